"""The checksum manifest every archive carries, and checking a tree against it.

`<tree>/.git-ckpt-archive.json` lists every file (size, sha256, mode,
mtime), symlink (its target: links are recorded, never followed) and
directory; `complete: true` is written last, so a tree whose manifest is
missing or incomplete never verifies.  Deleting a source after a copy
goes by the manifest too: only what it vouches for.  Standard library only.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record
from git_ckpt.safe_delete import DIR_FLAGS, remove_tree

MANIFEST = C.TRANSFER_MANIFEST_NAME
BUF_SIZE = 4 << 20
# copy_file: blocks in flight between the reading/hashing thread and the
# writer.  Small enough to stay mostly in cache, large enough that a sha256
# update releases the GIL and per-call overhead vanishes.
COPY_BUF_SIZE = 1 << 20
MIN_BUF_SIZE = 64 << 10   # the smallest block (a small file's; see _block_size)
COPY_BUFFERS = 4
# Written blocks are handed to writeback every WRITEBACK_STEP bytes, so the
# disk works while the copy goes on and the final fsync waits for a tail only.
WRITEBACK_STEP = 8 << 20
WRITEBACK = hasattr(os, 'posix_fadvise')   # Linux; elsewhere the fsync does it all
# None: pipeline when a core looks free (see _spare_cpu); True/False force it.
PIPELINE: bool | None = None


class Problem(record('Problem', 'path reason')):
    __slots__ = ()

    def __str__(self) -> str:
        return f'{self.path} ({self.reason})'


def write_manifest(directory: Path, data: dict) -> None:
    """Write the manifest into `directory`, which must be a real directory:
    opened with O_NOFOLLOW and written through that fd, so a symlink swapped
    in its place (say, after a rename moved it) is refused (ELOOP) instead of
    getting a file wherever it points."""
    dir_fd = os.open(directory, DIR_FLAGS)
    try:
        tmp = f'{MANIFEST}.tmp'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, MANIFEST, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    buf = bytearray(BUF_SIZE)
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        while True:
            n = os.readv(fd, [buf])
            if not n:
                break
            digest.update(memoryview(buf)[:n])
            size += n
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def check_file(path: Path, sha256: str | None, size: int) -> str | None:
    """Why `path` does not match its manifest record, or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 'missing'
    if not stat.S_ISREG(st.st_mode):
        return 'not a regular file'
    if st.st_size != size:
        return f'size {st.st_size}, expected {size}'
    if sha256 is not None and hash_file(path)[0] != sha256:
        return 'checksum mismatch'
    return None


def copy_file(src: Path, dest: Path, advance, pipeline: bool | None = None) -> str:
    """Copy one file, verify it, fsync it; return its sha256.

    Each block is read once and hashed, then written, read back from the
    destination and compared byte for byte with what was hashed, so the
    destination provably holds the bytes whose sha256 the manifest records
    without hashing everything twice (a memcmp costs a fraction of a sha256).
    Files larger than a few blocks are pipelined when a core looks free: a
    helper thread reads and hashes (sha256 releases the GIL) while this
    thread writes and verifies, through a small pool of reused buffers.  Both
    paths do the same work in the same order per block.  `pipeline` None:
    PIPELINE, else by load.  Writeback of verified blocks is started as the
    copy goes (WRITEBACK_STEP), so the fsync at the end waits for a tail, not
    the whole file.  Raises on a mismatch; `dest` is fsynced before returning.
    """
    src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dest_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            back_fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW)
            try:
                size = os.fstat(src_fd).st_size
                big = size > COPY_BUFFERS * COPY_BUF_SIZE
                if pipeline is None:
                    pipeline = PIPELINE if PIPELINE is not None else _spare_cpu()
                if big and pipeline:
                    digest = _copy_pipelined(src_fd, dest_fd, back_fd, dest, advance)
                else:
                    digest = _copy_inline(src_fd, dest_fd, back_fd, dest, advance, size)
            finally:
                os.close(back_fd)
            os.fsync(dest_fd)
        finally:
            os.close(dest_fd)
    finally:
        os.close(src_fd)
    return digest.hexdigest()


def _spare_cpu() -> bool:
    """Whether a second core is likely idle for the hashing thread.  With
    every core busy the hand-offs cost ~15% more than one thread (measured on
    a loaded 2-core node, benchmarks/README.md), so only then pipeline."""
    try:
        cpus = len(os.sched_getaffinity(0))
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False
    return cpus >= 2 and load <= cpus - 1


def _block_size(size: int) -> int:
    """COPY_BUF_SIZE, or less for a small file: a zeroed pair of 1 MiB
    buffers costs ~1 ms (page faults), 50x the copy of a 1K file.  A file
    that grew since it was measured is still read to its end, block by block."""
    return min(COPY_BUF_SIZE, max(size, MIN_BUF_SIZE))


def _copy_inline(src_fd: int, dest_fd: int, back_fd: int, dest: Path, advance, size: int):
    digest = hashlib.sha256()
    block = _block_size(size)
    buf, back = bytearray(block), bytearray(block)
    offset = 0
    while n := os.readv(src_fd, [buf]):
        digest.update(memoryview(buf)[:n])
        _write_and_check(dest_fd, back_fd, buf, back, n, offset, dest)
        offset += n
        advance(n)
    return digest


def _copy_pipelined(src_fd: int, dest_fd: int, back_fd: int, dest: Path, advance):
    import queue  # only here: most copies run inline, two files at once
    digest = hashlib.sha256()
    free: queue.SimpleQueue = queue.SimpleQueue()   # buffers the reader may fill
    full: queue.SimpleQueue = queue.SimpleQueue()   # (buffer, length, error) to write
    for _ in range(COPY_BUFFERS):
        free.put(bytearray(COPY_BUF_SIZE))

    def read_and_hash() -> None:
        try:
            while (buf := free.get()) is not None:
                n = os.readv(src_fd, [buf])
                digest.update(memoryview(buf)[:n])
                full.put((buf, n, None))
                if not n:
                    return
        except BaseException as exc:  # handed to the writer, which raises it
            full.put((None, 0, exc))

    reader = threading.Thread(target=read_and_hash, name='git-ckpt-hash', daemon=True)
    reader.start()
    back = bytearray(COPY_BUF_SIZE)
    offset = 0
    try:
        while True:
            buf, n, error = full.get()
            if error is not None:
                raise error
            if not n:
                break
            _write_and_check(dest_fd, back_fd, buf, back, n, offset, dest)
            free.put(buf)
            offset += n
            advance(n)
    finally:
        free.put(None)   # wakes a reader waiting for a buffer after a failure
        reader.join()    # before the caller closes src_fd under it
    return digest


def _write_and_check(dest_fd: int, back_fd: int, buf: bytearray, back: bytearray, n: int,
                     offset: int, dest: Path) -> None:
    view = memoryview(buf)[:n]
    written = 0
    while written < n:
        written += os.write(dest_fd, view[written:])
    got = os.preadv(back_fd, [memoryview(back)[:n]], offset)
    # bytearray == bytearray is a memcmp (a memoryview compare is not).
    if got != n or (buf != back if n == len(buf) else buf[:n] != back[:n]):
        raise GitCkptError(f'{dest} does not read back what was written at byte {offset}',
                           'check the destination filesystem; the source is intact')
    end = offset + n
    if WRITEBACK and end % WRITEBACK_STEP == 0:
        # Start writeback of the last verified step now (it does not wait);
        # DONTNEED then drops only the pages already clean.  Advice only: a
        # filesystem that refuses it loses nothing, the fsync still follows.
        try:
            os.posix_fadvise(dest_fd, end - WRITEBACK_STEP, WRITEBACK_STEP, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def read_manifest(tree: Path) -> dict | None:
    try:
        with open(Path(tree) / MANIFEST, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get('complete') is not True or not isinstance(data.get('files'), dict):
        return None
    return data


def is_inside(rel: str) -> bool:
    """Whether a manifest name stays inside its tree: relative, no `..`,
    no empty or `.` component."""
    parts = rel.split('/')
    return bool(rel) and not rel.startswith('/') and all(p not in ('', '.', '..') for p in parts)


def verify(tree: str | os.PathLike[str]) -> list[Problem]:
    """Every way `tree` differs from its manifest (empty: it is good).

    A missing, incomplete or unreadable manifest is itself a problem: such a
    tree is never reported good.  Files not in the manifest are problems too,
    and so are names that leave the tree (absolute, `..`): they are never
    read, and such a manifest never verifies (restore would act on them).
    """
    tree = Path(tree)
    data = read_manifest(tree)
    if data is None:
        return [Problem(MANIFEST, 'missing or incomplete manifest: the archive was never finished')]
    names = [*data['files'], *data.get('symlinks', {}), *data.get('dirs', [])]
    unsafe = [Problem(rel, 'a name outside the archive (absolute or with ..)') for rel in names
              if not isinstance(rel, str) or not is_inside(rel)]
    if unsafe:
        return unsafe
    problems = []
    seen: dict[tuple[int, int], str] = {}
    for rel, entry in sorted(data['files'].items()):
        path = tree / rel
        try:
            st = os.lstat(path)
            key = (st.st_dev, st.st_ino)
        except OSError:
            key = None
        if key in seen and seen[key] == entry.get('sha256'):
            continue  # a hard link to a file already verified
        reason = check_file(path, entry.get('sha256'), entry.get('size', -1))
        if reason:
            problems.append(Problem(rel, reason))
        elif key:
            seen[key] = entry.get('sha256')
    for rel, target in sorted(data.get('symlinks', {}).items()):
        try:
            actual = os.readlink(tree / rel)
        except OSError:
            problems.append(Problem(rel, 'symlink missing'))
            continue
        if actual != target:
            problems.append(Problem(rel, f'symlink points to {actual}, expected {target}'))
    expected = set(data['files']) | set(data.get('symlinks', {})) | set(data.get('dirs', [])) | {MANIFEST}
    for entry in walk_names(tree):
        if entry not in expected:
            problems.append(Problem(entry, 'not in the manifest'))
    return problems


def walk_names(tree: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = os.path.relpath(dirpath, tree)
        prefix = '' if rel_dir == '.' else f'{rel_dir}/'
        out += [f'{prefix}{n}' for n in dirnames + filenames]
    return out


def delete_verified(src: Path, dest: Path, *, keep: tuple[str, ...] = (), within: Path | None = None) -> list[str]:
    """Delete from `src` exactly what `dest`'s manifest vouches for (see
    delete_listed).  Returns the source paths left in place."""
    data = read_manifest(dest)
    if data is None:
        raise GitCkptError(f'{dest} has no complete manifest', 'the source was not deleted')
    return delete_listed(src, data, keep=keep, within=within)


def _vouched(manifest: dict):
    """may_delete for remove_tree: a file the manifest lists, unchanged (same
    size and mtime) since it was copied, or a symlink it lists."""
    files, symlinks = manifest['files'], manifest.get('symlinks', {})

    def verified(rel: str, st: os.stat_result) -> bool:
        if stat.S_ISLNK(st.st_mode):
            return rel in symlinks
        record = files.get(rel)
        return (record is not None and stat.S_ISREG(st.st_mode) and st.st_size == record['size']
                and st.st_mtime_ns == record.get('mtime_ns'))
    return verified


def delete_listed(src: Path, manifest: dict, *, keep: tuple[str, ...] = (),
                  within: Path | None = None) -> list[str]:
    """Delete the files of `src` a verified copy's manifest lists, unchanged
    (same size and mtime) since they were copied, and its symlinks; never
    following links (nor any between `within`, e.g. the scratch dir, and
    `src`).  Returns the source paths left in place.

    A scratch dir's own manifest (top level) goes last: a kill mid-delete
    leaves a dir git-ckpt still manages, so a rerun can find and finish it.
    Top-level names in `keep` are not deleted (nor, then, `src` itself)."""
    verified = _vouched(manifest)
    held = set(keep) | {C.MANIFEST_NAME}
    left = remove_tree(src, may_delete=lambda rel, st: rel not in held and verified(rel, st), within=within)
    if left and not set(left) - held and C.MANIFEST_NAME not in keep:
        left = remove_tree(src, may_delete=lambda rel, st: rel not in keep and verified(rel, st), within=within)
    return [rel for rel in left if rel not in keep]


def vouches_for(manifest: dict, src: Path, *, ignore: tuple[str, ...] = ()) -> bool:
    """Whether every file and symlink still in `src` is one `manifest` vouches
    for (what delete_listed would delete); top-level names in `ignore` aside."""
    verified = _vouched(manifest)
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, src)
        prefix = '' if rel_dir == '.' else f'{rel_dir}/'
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = f'{prefix}{name}'
            if rel in ignore:
                continue
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if not verified(rel, st):
                return False
    return True
