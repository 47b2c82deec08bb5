"""`--format tar.zst`: one compressed file per archive, for slow or object-like storage.

Layout of the tar stream: first a small journal member naming the source
(so a killed run's `.partial` can be recognised and restarted), then the tree
(dirs, files, symlinks as links, hard links as tar hard links), then the
checksum manifest as the LAST member: a truncated file has none, so it never
verifies.  Files are hashed while tar reads them; the zstd frame carries its
own checksum.  After writing, the whole file is read back and checked before
the `.partial` is renamed.  zstandard is imported lazily (optional extra).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path, PurePosixPath

from git_ckpt import constants as C
from git_ckpt.checksums import BUF_SIZE, MANIFEST, Problem, fsync_dir
from git_ckpt.errors import GitCkptError
from git_ckpt.progress import byte_progress
from git_ckpt.safe_delete import remove_tree
from git_ckpt.scratch import check_owned_file, now_iso
from git_ckpt.transfer import JOURNAL, Result, scan

LEVEL = 3


def _zstd():
    try:
        import zstandard
    except ImportError:
        raise GitCkptError('--format tar.zst needs the zstandard package',
                           "pip install 'git-ckpt[zstd]', or use the default --format dir")
    return zstandard


class _HashingReader(io.RawIOBase):
    """A file read by tarfile, hashed on the way through."""

    def __init__(self, fd: int, advance) -> None:
        self.fd, self.digest, self.advance = fd, hashlib.sha256(), advance

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = os.readv(self.fd, [buf])
        self.digest.update(memoryview(buf)[:n])
        self.advance(n)
        return n


def _json_member(tar: tarfile.TarFile, name: str, data: dict) -> None:
    raw = json.dumps(data, indent=1, sort_keys=True).encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(raw), 0o600, time.time()
    tar.addfile(info, io.BytesIO(raw))


def pack(src: Path, dest: Path, *, meta: dict, progress: bool | None = None) -> tuple[Result, dict]:
    """Write `src` as `dest` (.tar.zst) via `<dest>.partial`, verified before the rename."""
    zstandard = _zstd()
    entries, _special = scan(src)
    partial = dest.with_name(dest.name + C.PARTIAL_SUFFIX)
    if os.path.lexists(partial):
        check_owned_file(partial)  # deleted to restart: only a file of ours
        from git_ckpt.transfer import empty_partial
        if partial_source(partial) is None and not empty_partial(partial):
            raise GitCkptError(f'{partial} exists and is not an archive git-ckpt started', 'move it away and rerun')
        os.unlink(partial)  # a killed run of ours: restart cleanly
    files: dict[str, dict] = {}
    first_name: dict[tuple[int, int], str] = {}
    unique = {e.inode or e.rel: e.size for e in entries if e.kind == 'file'}
    total = sum(unique.values())
    try:
        with open(partial, 'xb') as raw, byte_progress(total, f'packing {dest.name}', progress) as bar:
            cctx = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True, threads=-1)
            with cctx.stream_writer(raw, closefd=False) as zout, \
                    tarfile.open(fileobj=zout, mode='w|', format=tarfile.PAX_FORMAT) as tar:
                tar.copybufsize = BUF_SIZE
                _json_member(tar, JOURNAL, {'source': os.path.realpath(src), 'started': now_iso()})
                for e in entries:
                    info = tarfile.TarInfo(e.rel)
                    info.mtime, info.mode = e.mtime_ns / 1e9, e.mode
                    if e.kind == 'dir':
                        info.type = tarfile.DIRTYPE
                        tar.addfile(info)
                    elif e.kind == 'link':
                        info.type, info.linkname, info.mode = tarfile.SYMTYPE, e.target, 0o777
                        tar.addfile(info)
                    elif e.inode and e.inode in first_name:
                        info.type, info.linkname = tarfile.LNKTYPE, first_name[e.inode]
                        tar.addfile(info)
                        files[e.rel] = dict(files[first_name[e.inode]], link_to=first_name[e.inode])
                    else:
                        if e.inode:
                            first_name[e.inode] = e.rel
                        info.size = e.size
                        fd = os.open(src / e.rel, os.O_RDONLY | os.O_NOFOLLOW)
                        try:
                            reader = _HashingReader(fd, bar.advance)
                            tar.addfile(info, reader)
                        finally:
                            os.close(fd)
                        files[e.rel] = {'size': e.size, 'sha256': reader.digest.hexdigest(),
                                        'mode': e.mode, 'mtime_ns': e.mtime_ns}
                manifest = {
                    'schema': 1, 'complete': True, 'method': 'tar.zst', 'created': now_iso(),
                    'source': os.fspath(src), 'tool_version': C.VERSION, 'files': files,
                    'symlinks': {e.rel: e.target for e in entries if e.kind == 'link'},
                    'dirs': [e.rel for e in entries if e.kind == 'dir'],
                    'total_bytes': total, 'meta': meta,
                }
                _json_member(tar, MANIFEST, manifest)
            raw.flush()
            os.fsync(raw.fileno())
        problems, _ = read_archive(partial)
        if problems:
            raise GitCkptError(f'{partial} does not match its source after writing: {problems[0]}',
                               'check the destination filesystem; the source is intact')
        os.rename(partial, dest)
        fsync_dir(dest.parent)
    except OSError as exc:
        from git_ckpt.transfer import _os_error
        if os.path.lexists(partial):
            os.unlink(partial)
        raise _os_error(exc, dest) from None
    n_files = sum(1 for e in entries if e.kind == 'file')
    return Result(dest, 'tar.zst', n_files, total, 0, []), manifest


def partial_source(partial: Path) -> str | None:
    """The source a `.tar.zst.partial` was packed from, if git-ckpt wrote it."""
    try:
        zstandard = _zstd()
        with open(partial, 'rb') as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zin, \
                tarfile.open(fileobj=zin, mode='r|') as tar:
            member = tar.next()
            if member is None or member.name != JOURNAL:
                return None
            return json.load(tar.extractfile(member)).get('source')
    except Exception:
        return None


def verify(path: Path) -> tuple[list[Problem], dict | None]:
    return read_archive(path)


def unpack(path: Path, out_dir: Path, *, progress: bool | None = None) -> dict:
    """Extract a verified archive into the new dir `out_dir`; raises (and
    removes out_dir) if anything does not match the manifest."""
    problems, manifest = read_archive(path, out_dir, progress)
    if problems:
        remove_tree(out_dir)
        shown = ', '.join(str(p) for p in problems[:5])
        raise GitCkptError(f'archive {path} does not match its manifest: {shown}',
                           'nothing was restored; restore from another copy of the archive')
    return manifest


def _safe_rel(name: str) -> str | None:
    rel = PurePosixPath(name)
    if rel.is_absolute() or '..' in rel.parts or not rel.parts:
        return None
    return rel.as_posix()


def read_archive(path: Path, out_dir: Path | None = None,
                 progress: bool | None = None) -> tuple[list[Problem], dict | None]:
    """Read the whole archive, hashing every file (and writing it under
    `out_dir` when given); return (problems, manifest)."""
    zstandard = _zstd()
    seen: dict[str, dict] = {}
    links: dict[str, str] = {}
    dirs: set[str] = set()
    manifest = None
    problems: list[Problem] = []
    if out_dir is not None:
        os.mkdir(out_dir, 0o700)
    try:
        with open(path, 'rb') as raw, byte_progress(os.path.getsize(path), f'reading {path.name}',
                                                    progress if out_dir is not None else False) as bar, \
                zstandard.ZstdDecompressor().stream_reader(raw) as zin, \
                tarfile.open(fileobj=zin, mode='r|') as tar:
            for member in tar:
                rel = _safe_rel(member.name)
                if rel is None:
                    problems.append(Problem(member.name, 'unsafe path in archive'))
                    continue
                if rel in (JOURNAL, MANIFEST):
                    if rel == MANIFEST:
                        manifest = json.load(tar.extractfile(member))
                    continue
                parent = os.path.dirname(rel)
                if parent and parent not in dirs:
                    problems.append(Problem(rel, 'its directory is not a directory in the archive'))
                    continue
                if member.isdir():
                    dirs.add(rel)
                    if out_dir is not None:
                        os.mkdir(out_dir / rel, 0o700)
                elif member.issym():
                    links[rel] = member.linkname
                    if out_dir is not None:
                        os.symlink(member.linkname, out_dir / rel)
                elif member.islnk():
                    # Only to a file this archive already brought: an absolute or `..`
                    # name would link (and _finish then chmod) a file outside.
                    if member.linkname not in seen or 'link_to' in seen[member.linkname]:
                        problems.append(Problem(rel, f'hard link to {member.linkname}, not a file before it'))
                        continue
                    seen[rel] = dict(seen[member.linkname], link_to=member.linkname)
                    if out_dir is not None:
                        os.link(out_dir / member.linkname, out_dir / rel, follow_symlinks=False)
                elif member.isfile():
                    seen[rel] = _read_member(tar, member, out_dir, rel, bar.advance)
                else:
                    problems.append(Problem(rel, 'unsupported member type'))
            if out_dir is not None:
                _finish(out_dir, manifest, seen)
    except (tarfile.TarError, zstandard.ZstdError, EOFError, ValueError) as exc:
        return [Problem(path.name, f'unreadable or truncated: {exc}')], None
    if not isinstance(manifest, dict) or manifest.get('complete') is not True:
        return [Problem(MANIFEST, 'missing or incomplete manifest: the archive was never finished')], None
    problems += _compare(manifest, seen, links, dirs)
    return problems, manifest


def _read_member(tar, member, out_dir, rel, advance) -> dict:
    digest = hashlib.sha256()
    src = tar.extractfile(member)
    out = None
    if out_dir is not None:
        out = os.open(out_dir / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    size = 0
    try:
        while True:
            chunk = src.read(BUF_SIZE)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            advance(len(chunk))
            if out is not None:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
        if out is not None:
            os.fsync(out)
    finally:
        if out is not None:
            os.close(out)
    return {'size': size, 'sha256': digest.hexdigest()}


def _finish(out_dir: Path, manifest: dict | None, extracted: dict) -> None:
    """Modes and mtimes from the manifest, once every file is written; only
    for files this run extracted (a name in the manifest alone may point
    anywhere, e.g. an absolute path)."""
    if not isinstance(manifest, dict):
        return
    for rel, record in manifest.get('files', {}).items():
        if rel not in extracted:
            continue
        target = out_dir / rel
        if os.path.lexists(target) and not os.path.islink(target) and 'mode' in record:
            os.chmod(target, record['mode'])
            if 'mtime_ns' in record:
                os.utime(target, ns=(record['mtime_ns'], record['mtime_ns']))


def _compare(manifest: dict, seen: dict, links: dict, dirs: set) -> list[Problem]:
    problems = []
    for rel, record in sorted(manifest.get('files', {}).items()):
        got = seen.get(rel)
        if got is None:
            problems.append(Problem(rel, 'missing'))
        elif got.get('size') != record.get('size'):
            problems.append(Problem(rel, f'size {got.get("size")}, expected {record.get("size")}'))
        elif got.get('sha256') != record.get('sha256'):
            problems.append(Problem(rel, 'checksum mismatch'))
    for rel, target in sorted(manifest.get('symlinks', {}).items()):
        if links.get(rel) != target:
            problems.append(Problem(rel, 'symlink missing or changed'))
    expected = set(manifest.get('files', {})) | set(manifest.get('symlinks', {})) | set(manifest.get('dirs', []))
    for rel in sorted((set(seen) | set(links) | dirs) - expected):
        problems.append(Problem(rel, 'not in the manifest'))
    return problems

