"""Reading git's loose objects directly: the commit guard's size checks.

`git add` writes every new blob as a loose object, objects/xx/yyyy..., a zlib
stream that starts with '<type> <size>\\0'.  Reading that header (or, to bound
the size, only the file's own size) in process is what `cat-file
--batch-check` does, without its process and its five syscalls per object.
Objects that are not loose (packed, in an alternate) or cannot be read are
left out: the caller asks `git cat-file` about those (git_index.object_sizes).
Standard library only (hook path).
"""
from __future__ import annotations

import os

from git_ckpt import constants as C


class _ObjectDirs:
    """Opens objects/xx once and finds objects/xx/yyyy by name in it (a
    stat with a dir fd walks one path component, not the whole path)."""

    def __init__(self, objects_dir: str | os.PathLike[str]) -> None:
        self.base = os.fspath(objects_dir) + os.sep
        self.fds: dict[str, int | None] = {}

    def fd(self, oid: str) -> int | None:
        prefix = oid[:2]
        fd = self.fds.get(prefix, -1)
        if fd == -1:
            try:
                fd = os.open(self.base + prefix, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                fd = None  # no loose object starts with these two digits
            self.fds[prefix] = fd
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)


def loose_object_sizes(oids, objects_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Size of each object stored loose in `objects_dir`, from the object's own
    header ('<type> <size>\\0', zlib-compressed at the start of objects/xx/yyyy);
    objects not stored loose (packed, alternates) or unreadable are left out.

    The same header `cat-file --batch-check` reads, without its process and
    its five syscalls per object: a fresh `git add` of 5,000 files leaves
    5,000 loose objects, and reading their headers was most of the guard's time.
    """
    import zlib
    sizes = {}
    dirs = _ObjectDirs(objects_dir)
    try:
        for oid in oids:
            try:
                fd = os.open(oid[2:], os.O_RDONLY, dir_fd=dirs.fd(oid))
            except (OSError, TypeError):  # TypeError: no such objects/xx dir
                continue  # packed, in an alternate, or missing: cat-file decides
            try:
                inflate = zlib.decompressobj()
                header = inflate.decompress(os.read(fd, 64), 64)
                while b'\0' not in header and not inflate.eof and len(header) < 64:
                    more = inflate.unconsumed_tail or os.read(fd, 4096)
                    if not more:
                        break
                    header += inflate.decompress(more, 64 - len(header))
            except (OSError, zlib.error):
                continue
            finally:
                os.close(fd)
            kind, space, size = header.partition(b'\0')[0].partition(b' ')
            if space and size.isdigit() and b'\0' in header:
                sizes[oid] = int(size)
    finally:
        dirs.close()
    return sizes


# Deflate's largest possible expansion: a 258-byte match coded in 2 bits.
DEFLATE_MAX_RATIO = 1032


def loose_objects_maybe_over(oids, objects_dir: str | os.PathLike[str], limit: int) -> list[str]:
    """The oids NOT proven to be at most `limit` bytes by their loose object
    file: a zlib file of S bytes inflates to at most DEFLATE_MAX_RATIO * S
    (header included).  One stat per object instead of a read; objects not
    stored loose are returned too (unproven)."""
    return start_maybe_over(oids, objects_dir, limit)()


def start_maybe_over(oids, objects_dir: str | os.PathLike[str], limit: int):
    """loose_objects_maybe_over, started now; call the result for the answer.

    Thousands of oids (the first commit of a project) are split with one
    forked child when a core is free (workers.worker_count): it stats its
    half while this process goes on with other work, then with its own half
    when the answer is asked for.  The stats are the guard's largest cost,
    and a fork costs about a millisecond; on a busy machine the child waits
    for a core and this process for the child (measured: ~5 ms saved on two
    idle cores, up to ~10 ms lost on two busy ones)."""
    oids = list(oids)
    if len(oids) >= C.GUARD_FORK_MIN_OBJECTS:
        from git_ckpt.workers import worker_count
        if worker_count(2) >= 2:
            half = len(oids) // 2
            return _start_split(oids[:half], oids[half:], objects_dir, limit)
    return lambda: _maybe_over(oids, objects_dir, limit)


def _maybe_over(oids, objects_dir, limit: int) -> list[str]:
    largest_small_file = limit // DEFLATE_MAX_RATIO
    dirs = _ObjectDirs(objects_dir)
    stat, out = os.stat, []
    try:
        for oid in oids:
            fd = dirs.fd(oid)
            try:
                if fd is not None and stat(oid[2:], dir_fd=fd).st_size <= largest_small_file:
                    continue
            except OSError:
                pass
            out.append(oid)
    finally:
        dirs.close()
    return out


_DONE = b'\0done'


def _start_split(mine, theirs, objects_dir, limit: int):
    """_maybe_over of both lists, `theirs` in a child forked now, `mine` when
    the result is called.  The child's answer counts only when complete
    (ends with _DONE); otherwise this process does that half too, so the
    result never depends on the fork."""
    from git_ckpt.workers import fork_child

    def answer(write_fd: int) -> None:
        data = '\n'.join(_maybe_over(theirs, objects_dir, limit)).encode() + _DONE
        while data:
            data = data[os.write(write_fd, data):]
    child = fork_child(answer)
    if child is None:
        return lambda: _maybe_over(mine + theirs, objects_dir, limit)

    def result() -> list[str]:
        pid, read_fd = child
        try:
            out = _maybe_over(mine, objects_dir, limit)
            chunks = []
            while chunk := os.read(read_fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(read_fd)
            os.waitpid(pid, 0)
        reply = b''.join(chunks)
        if not reply.endswith(_DONE):
            return out + _maybe_over(theirs, objects_dir, limit)
        reply = reply[:-len(_DONE)]
        return out + (reply.decode().split('\n') if reply else [])
    return result
