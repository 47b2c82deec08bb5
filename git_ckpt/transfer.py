"""Moving a directory tree somewhere else without ever losing it.

Used by `archive`, `restore` and `migrate`.  The rules:
- Same filesystem: one rename; nothing is copied, so it costs the same for
  10 MB and 1 TB.  The manifest then records names and sizes only.
- Otherwise the tree is copied into `<dest>.partial`: each block is read
  once, hashed (sha256), written, read back from the destination and
  compared with what was hashed (checksums.copy_file); each file is fsynced
  before its journal line is written.  Files are copied two at a time when
  there are cores for it (parallel.py).  Only when every file matched is the
  checksum manifest written, the `.partial` renamed to its final name, and
  (if asked) the source deleted: only the files that were verified, never
  following a symlink.
- kill -9 at any point: the source is untouched and `<dest>.partial` holds a
  journal of the files already copied and verified; a rerun skips those and
  copies the rest.  A tree without a complete manifest never verifies.
Standard library only; rich is imported lazily for the progress bar.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import threading
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.checksums import (BUF_SIZE, MANIFEST, Problem, check_file, copy_file,  # noqa: F401
                                 delete_listed, delete_verified, fsync_dir, hash_file,
                                 read_manifest, verify, vouches_for, write_manifest)
from git_ckpt.errors import GitCkptError
from git_ckpt.parallel import run_parallel
from git_ckpt.progress import byte_progress
from git_ckpt.records import record
from git_ckpt.safe_delete import remove_tree
from git_ckpt.scratch import check_owned_dir, now_iso

JOURNAL = C.TRANSFER_JOURNAL_NAME
PARTIAL = C.PARTIAL_SUFFIX
RESERVED = (MANIFEST, JOURNAL)


class Entry(record('Entry', 'rel kind size mode mtime_ns target inode')):
    """rel: path below the source; kind: 'file', 'link' or 'dir'; target: a
    link's target; inode: (dev, ino) of a file with several hard links."""
    __slots__ = ()


class Result(record('Result', 'dest method files bytes resumed source_left')):
    """method: 'rename' or 'copy'; resumed: files a rerun found already
    copied and verified; source_left: source paths not deleted (changed since
    the copy, or special files)."""
    __slots__ = ()


def scan(src: Path, skip: tuple[str, ...] = ()) -> tuple[list[Entry], list[str]]:
    """Every dir, file and symlink under src (never following links), and
    the special files (fifos, sockets, devices) that cannot be archived.
    Top-level names in `skip` are left out."""
    entries: list[Entry] = []
    special: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as it:
            children = sorted(it, key=lambda e: e.name)
        for child in children:
            rel = f'{prefix}{child.name}'
            if not prefix and child.name in skip:
                continue
            st = child.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                entries.append(Entry(rel, 'dir', 0, stat.S_IMODE(st.st_mode), st.st_mtime_ns, None, None))
                walk(Path(child.path), f'{rel}/')
            elif stat.S_ISLNK(st.st_mode):
                entries.append(Entry(rel, 'link', 0, 0, st.st_mtime_ns, os.readlink(child.path), None))
            elif stat.S_ISREG(st.st_mode):
                inode = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
                entries.append(Entry(rel, 'file', st.st_size, stat.S_IMODE(st.st_mode),
                                     st.st_mtime_ns, None, inode))
            else:
                special.append(rel)

    walk(src, '')
    reserved = [e.rel for e in entries if e.rel in RESERVED]
    if reserved:
        raise GitCkptError(f'{src} already contains {reserved[0]} (it looks like an archive itself)',
                           'restore it first, or move that file away')
    return entries, special


def same_filesystem(src: Path, dest_parent: Path) -> bool:
    """Whether a rename from src into dest_parent can work (dest_parent may
    not exist yet: its nearest existing ancestor decides)."""
    dest_parent = Path(os.path.abspath(dest_parent))
    while not dest_parent.exists() and dest_parent != dest_parent.parent:
        dest_parent = dest_parent.parent
    return os.stat(src).st_dev == os.stat(dest_parent).st_dev


def transfer(src: str | os.PathLike[str], dest: str | os.PathLike[str], *,
             delete_source: bool = False, allow_rename: bool = True,
             progress: bool | None = None, meta: dict | None = None,
             skip: tuple[str, ...] = (), within: Path | None = None) -> Result:
    """Move (rename) or copy-and-verify the tree `src` to `dest`.

    `dest` must not exist; its parent must.  A rename moves the source (there
    is no copy left to delete); a copy keeps the source unless
    `delete_source`.  `allow_rename=False` always copies (restore keeps its
    archive).  `meta` is stored in the manifest as is; top-level names in
    `skip` are not copied (a rename moves everything).  `within`: a dir
    above `src` (the scratch dir) below which the source delete follows no
    symlink at all (see safe_delete.remove_tree).  Raises GitCkptError
    with the source intact on any failure.
    """
    src, dest = Path(src), Path(dest)
    if not src.is_dir() or src.is_symlink():
        raise GitCkptError(f'{src} is not a directory', 'give a directory to transfer')
    if dest.exists() or dest.is_symlink():
        raise GitCkptError(f'{dest} already exists', 'archives are never overwritten; choose another name')
    if not dest.parent.is_dir():
        raise GitCkptError(f'{dest.parent} does not exist', 'create it first')
    entries, special = scan(src, skip)
    if allow_rename and same_filesystem(src, dest.parent) and not _partial(dest).exists():
        try:
            return _rename(src, dest, entries, meta)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # a bind mount: same st_dev, still cross-device
                raise _os_error(exc, dest)
    return _copy(src, dest, entries, special, delete_source, progress, meta, within)


def _partial(dest: Path) -> Path:
    return dest.with_name(dest.name + PARTIAL)


def _os_error(exc: OSError, dest: Path) -> GitCkptError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return GitCkptError(f'no space left on the filesystem of {dest.parent} ({exc.strerror})',
                            'free space there or choose another destination; the source is intact')
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return GitCkptError(f'cannot write to {dest.parent}: {exc.strerror}',
                            'choose a writable destination (--to DIR) or fix its permissions')
    where = exc.filename or dest
    return GitCkptError(f'cannot transfer to {dest}: {exc.strerror} ({where})',
                        'fix the problem and rerun; the source is intact')


def _manifest(src: Path, method: str, entries: list[Entry], hashes: dict[str, str | None],
              links: dict[str, str], meta: dict | None) -> dict:
    files = {}
    for e in entries:
        if e.kind == 'file':
            record = {'size': e.size, 'sha256': hashes.get(e.rel), 'mode': e.mode,
                      'mtime_ns': e.mtime_ns}
            if e.rel in links:
                record['link_to'] = links[e.rel]
            files[e.rel] = record
    return {
        'schema': 1, 'complete': True, 'method': method, 'created': now_iso(),
        'source': os.fspath(src), 'tool_version': C.VERSION,
        'files': files,
        'symlinks': {e.rel: e.target for e in entries if e.kind == 'link'},
        'dirs': [e.rel for e in entries if e.kind == 'dir'],
        'total_bytes': sum(e.size for e in entries if e.kind == 'file' and e.rel not in links),
        'meta': meta or {},
    }


def _rename(src: Path, dest: Path, entries: list[Entry], meta: dict | None) -> Result:
    # The manifest is computed first and written just after the rename; a
    # crash between the two leaves a tree that does not verify (never "good"),
    # with every byte still in it.
    data = _manifest(src, 'rename', entries, {}, {}, meta)
    os.rename(src, dest)
    write_manifest(dest, data)
    fsync_dir(dest.parent)
    files = [e for e in entries if e.kind == 'file']
    return Result(dest, 'rename', len(files), sum(e.size for e in files), 0, [])


def _read_journal(partial: Path, src: Path) -> dict[str, dict] | None:
    """Files already copied and verified by an earlier run, or None when the
    partial is not a transfer of `src`."""
    try:
        lines = (partial / JOURNAL).read_text(encoding='utf-8').splitlines()
    except OSError:
        return None
    done: dict[str, dict] = {}
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line from a kill
        if i == 0:
            if record.get('source') != os.fspath(src):
                return None
        elif isinstance(record, dict) and 'rel' in record:
            done[record['rel']] = record
    return done


def partial_source(partial: Path) -> str | None:
    """The source a `.partial` tree was being copied from, if it is ours: its
    journal says, or, once the copy is complete (the journal is deleted just
    before the rename to the final name), its manifest."""
    try:
        with open(partial / JOURNAL, encoding='utf-8') as f:
            return json.loads(f.readline()).get('source')
    except (OSError, ValueError, AttributeError):
        pass
    manifest = read_manifest(partial)
    source = manifest.get('source') if manifest is not None else None
    return os.path.realpath(source) if isinstance(source, str) and source else None


def _copy(src: Path, dest: Path, entries: list[Entry], special: list[str],
          delete_source: bool, progress: bool | None, meta: dict | None, within: Path | None) -> Result:
    partial = _partial(dest)
    if os.path.lexists(partial):
        # Resumed into, or deleted to restart: only a real dir of ours (a
        # forged journal in someone else's dir would have us copy into it).
        check_owned_dir(partial)
    src_real = Path(os.path.realpath(src))
    done = _read_journal(partial, src_real) if partial.exists() else None
    if partial.exists() and done is None:
        if partial_source(partial) is None and not (partial / MANIFEST).exists() and not empty_partial(partial):
            raise GitCkptError(f'{partial} exists and is not a transfer git-ckpt started',
                               'move it away and rerun')
        remove_tree(partial)  # ours, for another source: restart cleanly
    files = [e for e in entries if e.kind == 'file']
    needed = sum(e.size for e in files if not _still_valid(done, e))
    try:
        _check_space(dest, needed)  # before anything is written
        if done is None:
            os.mkdir(partial, 0o700)
            with open(partial / JOURNAL, 'w', encoding='utf-8') as f:
                f.write(json.dumps({'source': os.fspath(src_real), 'started': now_iso()}) + '\n')
            done = {}
        hashes, links, resumed = _copy_entries(src, partial, entries, done, progress)
        _finish_dirs(partial, entries)
        manifest = _manifest(src, 'copy', entries, hashes, links, meta)
        write_manifest(partial, manifest)
        os.unlink(partial / JOURNAL)
        fsync_dir(partial)
        os.rename(partial, dest)
        fsync_dir(dest.parent)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            remove_tree(partial)  # a copy that cannot finish; the source is untouched
        raise _os_error(exc, dest) from None
    left = list(special)
    if delete_source:
        left += delete_verified(src, dest, within=within)
    return Result(dest, 'copy', len(files), manifest['total_bytes'], resumed, left)


def _still_valid(done: dict | None, e: Entry) -> bool:
    record = (done or {}).get(e.rel)
    return bool(record) and record.get('size') == e.size and record.get('mtime_ns') == e.mtime_ns


def _check_space(dest: Path, needed: int) -> None:
    st = os.statvfs(dest.parent)
    free = st.f_bavail * st.f_frsize
    if needed > free:
        from git_ckpt.output import human_size
        raise GitCkptError(
            f'not enough space on the filesystem of {dest.parent}: need {human_size(needed)}, '
            f'{human_size(free)} free', 'free space there or choose another destination; the source is intact')


def _copy_entries(src: Path, partial: Path, entries: list[Entry], done: dict,
                  progress: bool | None) -> tuple[dict, dict, int]:
    hashes: dict[str, str] = {}
    links: dict[str, str] = {}        # rel -> rel of the first name of the same inode
    first_name: dict[tuple[int, int], str] = {}
    resumed = 0
    jobs: list[Entry] = []
    for e in entries:
        target = partial / e.rel
        if e.kind == 'dir':
            os.makedirs(target, 0o700, exist_ok=True)
        elif e.kind == 'link':
            if target.is_symlink():
                os.unlink(target)
            os.symlink(e.target, target)
        elif e.inode and e.inode in first_name:
            links[e.rel] = first_name[e.inode]   # linked once its first name is copied
        else:
            if e.inode:
                first_name[e.inode] = e.rel
            if _still_valid(done, e) and _size_of(target) == e.size:
                hashes[e.rel] = done[e.rel]['sha256']
                resumed += 1
            else:
                jobs.append(e)
    total = sum(e.size for e in jobs)
    with byte_progress(total, f'copying to {partial.name[:-len(PARTIAL)]}', progress) as bar, \
            open(partial / JOURNAL, 'a', encoding='utf-8') as journal:
        journal_lock = threading.Lock()

        def copy_one(e: Entry, advance, pipeline: bool | None) -> None:
            target = partial / e.rel
            digest = copy_file(src / e.rel, target, advance, pipeline)
            os.utime(target, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
            bad = check_file(target, None, e.size)  # same size as when scanned
            if bad:
                raise GitCkptError(f'{target} does not match its source after copying ({bad})',
                                   'check the destination filesystem; the source is intact')
            hashes[e.rel] = digest
            with journal_lock:   # a line only for a file copied, verified and fsynced
                journal.write(json.dumps({'rel': e.rel, 'size': e.size, 'mtime_ns': e.mtime_ns,
                                          'sha256': digest}) + '\n')
                journal.flush()

        run_parallel(jobs, copy_one, bar.advance)
    for rel, first in links.items():
        target = partial / rel
        if target.exists() or target.is_symlink():
            os.unlink(target)
        os.link(partial / first, target)
        hashes[rel] = hashes[first]
    return hashes, links, resumed


def _size_of(path: Path) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return -1
    return st.st_size if stat.S_ISREG(st.st_mode) else -1


def _finish_dirs(partial: Path, entries: list[Entry]) -> None:
    """Modes and mtimes of files and dirs, deepest dirs first (writing into
    a dir changes its mtime), then fsync every dir."""
    for e in entries:
        if e.kind == 'file':
            os.chmod(partial / e.rel, e.mode)
    for e in reversed([e for e in entries if e.kind == 'dir']):
        os.chmod(partial / e.rel, e.mode | stat.S_IRWXU)
        os.utime(partial / e.rel, ns=(e.mtime_ns, e.mtime_ns))
        fsync_dir(partial / e.rel)


def empty_partial(partial: Path) -> bool:
    """A `.partial` a kill left before it held any data: an empty dir, or one
    with only a journal whose first line was never finished (a transfer), or
    an empty file (a tar.zst).  Restarting it loses nothing."""
    try:
        st = os.lstat(partial)
        if stat.S_ISREG(st.st_mode):
            return st.st_size == 0
        if not stat.S_ISDIR(st.st_mode) or set(os.listdir(partial)) - {JOURNAL}:
            return False
        with open(partial / JOURNAL, 'rb') as f:
            return b'\n' not in f.read(1 << 16)
    except FileNotFoundError:
        return True   # no journal in an empty dir
    except OSError:
        return False
