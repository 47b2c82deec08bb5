"""Reading git's loose objects directly: the commit guard's size checks.

`git add` writes every new blob as a loose object, objects/xx/yyyy..., a zlib
stream that starts with '<type> <size>\\0'.  Reading that header (or, to bound
the size, only the file's own size) in process is what `cat-file
--batch-check` does, without its process and its five syscalls per object.
Objects that are not loose (packed, in an alternate) or cannot be read are
left out: the caller asks `git cat-file` about those (git.object_sizes).
Standard library only (hook path).
"""
from __future__ import annotations

import os

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
