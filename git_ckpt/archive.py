"""Archives of scratch dirs: where they go, what they are called, making
and restoring them, and deleting a managed scratch dir.

An archive is a directory (or a .tar.zst file) named `<worktree>-<date>`
(`<worktree>-<run>-<date>` for one run) in the archive dir: `--to`, else
`git config ckpt.archiveDir`, else `<root>/archive`.  Names are never reused:
a second archive the same day is `-2`, `-3`...  The moving itself is
transfer.py's job (rename on one filesystem, verified copy across).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import transfer
from git_ckpt.checksums import check_file, walk_names
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record
from git_ckpt.safe_delete import DIR_FLAGS, open_managed_dir, remove_tree, rmtree_at, unlink_within
from git_ckpt.scratch import ensure_private_dir, ensure_standalone_dir
from git_ckpt.settings import Settings

TAR_SUFFIX = '.tar.zst'


def archive_root(cli_to: str | None, settings: Settings, root_real: Path, *, create: bool = True) -> Path:
    """--to, else ckpt.archiveDir, else <root>/archive; created 0700 and checked writable."""
    configured = settings.get(C.CONFIG_ARCHIVE_DIR)
    if cli_to or configured:
        where = cli_to or configured[0]
        path = Path(os.path.abspath(os.path.expanduser(where)))
        flag = '--to' if cli_to else f'git config {C.CONFIG_ARCHIVE_DIR}'
        if create:
            # Like GIT_CKPT_DIR: the parents are the user's choice; what we
            # create is 0700, and the dir itself must be a real dir of ours
            # (not a link, not someone else's pre-created dir to read from).
            try:
                ensure_standalone_dir(path)
            except GitCkptError as exc:
                raise GitCkptError(f'archive dir {path} ({flag}): {exc.problem}',
                                   'choose a destination of your own with --to DIR') from None
            except OSError as exc:
                raise GitCkptError(f'cannot create archive dir {path} ({flag}): {exc.strerror}',
                                   'choose a writable destination with --to DIR')
    else:
        path = ensure_private_dir(root_real, C.ARCHIVE_AREA, create=create)
        flag = 'default'
    if create and not path.is_dir():
        raise GitCkptError(f'archive dir {path} ({flag}) is not a directory', 'choose another with --to DIR')
    if create and not os.access(path, os.W_OK | os.X_OK):
        raise GitCkptError(f'archive dir {path} ({flag}) is not writable by you',
                           'choose a writable destination with --to DIR or fix its permissions')
    return path


def worktree_name(manifest: dict, scratch_dir: Path) -> str:
    """The name of the worktree a scratch dir belongs (or belonged) to."""
    name = os.path.basename(str(manifest.get('worktree', '')).rstrip('/'))
    if not name:
        name = scratch_dir.name.rsplit('-', 1)[0]
    return name.lstrip('.') or 'worktree'


def base_name(worktree: str, run: str | None, day: str | None = None) -> str:
    day = day or time.strftime('%Y-%m-%d')
    run_part = f'-{run.strip("/").replace("/", "_")}' if run else ''
    return f'{worktree}{run_part}-{day}'


def choose_dest(dest_root: Path, base: str, fmt: str, src: Path) -> tuple[Path, bool]:
    """(archive path, resuming): an unfinished transfer of the same source
    under one of this base's names is resumed; otherwise the first free name."""
    suffix = TAR_SUFFIX if fmt == 'tar.zst' else ''
    src_real = os.path.realpath(src)
    try:
        taken = set(os.listdir(dest_root))   # one listing, not ~2000 lstat calls
    except OSError:
        taken = set()
    names = [f'{base if i == 1 else f"{base}-{i}"}{suffix}' for i in range(1, 1000)]
    for name in names:
        partial = name + C.PARTIAL_SUFFIX
        if name not in taken and partial in taken and \
                (_partial_source(dest_root / partial, fmt) == src_real
                 or transfer.empty_partial(dest_root / partial)):
            return dest_root / name, True
    for name in names:
        if name not in taken and name + C.PARTIAL_SUFFIX not in taken:
            return dest_root / name, False
    raise GitCkptError(f'too many archives named {base}* in {dest_root}', 'clean up old archives')


def _partial_source(partial: Path, fmt: str) -> str | None:
    if fmt == 'tar.zst':
        from git_ckpt import tarzst
        return tarzst.partial_source(partial)
    return transfer.partial_source(partial)


class Archived(record('Archived', 'source dest method files bytes resumed source_left source_gone')):
    """method: 'rename', 'copy' or 'tar.zst'."""
    __slots__ = ()


def make_archive(src: Path, dest: Path, *, fmt: str, delete_source: bool, meta: dict,
                 progress: bool | None = None, within: Path | None = None,
                 keep: tuple[str, ...] = ()) -> Archived:
    """Archive the tree `src` as `dest` (see choose_dest).  `within`: the
    scratch dir holding `src` (the source delete follows no symlink below
    it).  With delete_source, top-level names in `keep` stay (a live
    worktree's scratch manifest)."""
    src_real, dest_real = os.path.realpath(src), os.path.realpath(dest.parent)
    if dest_real == src_real or dest_real.startswith(src_real + os.sep):
        raise GitCkptError(f'the archive dir {dest.parent} is inside {src}', 'archive to a dir outside it (--to DIR)')
    if fmt == 'tar.zst':
        from git_ckpt import tarzst
        result, manifest = tarzst.pack(src, dest, meta=meta, progress=progress)
        left = transfer.delete_listed(src, manifest, keep=keep, within=within) if delete_source else []
        method = 'tar.zst'
    else:
        result = transfer.transfer(src, dest, progress=progress, meta=meta, within=within)
        left, method = result.source_left, result.method
        if delete_source and method == 'copy':
            left += transfer.delete_verified(src, dest, keep=keep, within=within)
    return Archived(src, dest, method, result.files, result.bytes, result.resumed, left,
                    not os.path.lexists(src))


def interrupted_delete(dest_root: Path, base: str, fmt: str, src: Path,
                       ignore: tuple[str, ...] = ()) -> tuple[Path, dict] | None:
    """(archive, manifest) of an archive of `src` under one of `base`'s names
    that verifies and vouches for everything still in `src`: what an
    `archive --delete-source` killed while deleting the source leaves.  A
    rerun then only finishes the delete, instead of archiving the rest a
    second time under a new name (one archive per run, as asked)."""
    suffix = TAR_SUFFIX if fmt == 'tar.zst' else ''
    sources = (os.fspath(src), os.path.realpath(src))
    for i in range(1, 1000):
        final = dest_root / f'{base if i == 1 else f"{base}-{i}"}{suffix}'
        if archive_format(final) != fmt or final.is_symlink():
            continue
        if fmt == 'dir':
            manifest = transfer.read_manifest(final)
            if not manifest or manifest.get('source') not in sources or \
                    not transfer.vouches_for(manifest, src, ignore=ignore):
                continue
        try:
            manifest = check_archive(final)  # every byte, before anything is deleted on its word
        except GitCkptError:
            continue
        if manifest.get('source') in sources and transfer.vouches_for(manifest, src, ignore=ignore):
            return final, manifest
    return None


def delete_scratch_dir(scratch_dir: Path) -> None:
    """Delete a whole managed scratch dir (it must carry a manifest), by fd,
    never following a symlink."""
    fd = open_managed_dir(scratch_dir)  # raises for an unmanaged dir or a symlink
    os.close(fd)
    parent_fd = os.open(scratch_dir.parent, DIR_FLAGS)
    try:
        rmtree_at(parent_fd, scratch_dir.name)
    finally:
        os.close(parent_fd)


def find_archive(arg: str, dest_root: Path | None) -> Path:
    """ARCHIVE as given: a path, or a name in the archive dir."""
    path = Path(os.path.abspath(os.path.expanduser(arg)))
    if os.path.lexists(path):
        return path
    if dest_root is not None:
        for candidate in (dest_root / arg, dest_root / f'{arg}{TAR_SUFFIX}'):
            if os.path.lexists(candidate):
                return candidate
    where = f' or in {dest_root}' if dest_root else ''
    raise GitCkptError(f'no archive {arg} (as a path{where})', 'list archives with: ls ' +
                       os.fspath(dest_root or '.'))


def find_staging(scratch_dir: Path, arg: str) -> tuple[Path, Path, dict] | None:
    """(archive path, target, manifest) of a restore of the archive `arg` that
    was killed after moving it (same filesystem) into its staging dir under
    `scratch_dir`: the archive is gone from the archive dir, and its files are
    all there.  None when there is no such staging dir."""
    wanted = f'{C.RESTORE_STAGING_PREFIX}{os.path.basename(os.path.abspath(os.path.expanduser(arg)))}'
    for dirpath, dirnames, _ in os.walk(scratch_dir):
        if wanted in dirnames:
            staging = Path(dirpath) / wanted
            manifest = transfer.read_manifest(staging)
            if manifest is None and not staging.is_symlink() and not os.listdir(staging):
                manifest = {'files': {}}   # killed while removing it, after everything was in place
            if manifest is not None and not staging.is_symlink():
                return Path(os.path.abspath(os.path.expanduser(arg))), Path(dirpath), manifest
        dirnames[:] = [d for d in dirnames if not d.startswith((C.CHECKPOINT_PREFIX, C.RESTORE_STAGING_PREFIX))]
    return None


def archive_format(path: Path) -> str:
    return 'tar.zst' if path.name.endswith(TAR_SUFFIX) and path.is_file() else 'dir'


def check_archive(path: Path) -> dict:
    """Verify an archive; its manifest, or raise naming the bad files."""
    if archive_format(path) == 'tar.zst':
        from git_ckpt import tarzst
        problems, manifest = tarzst.verify(path)
    else:
        if not path.is_dir() or path.is_symlink():
            raise GitCkptError(f'{path} is not an archive (not a directory or .tar.zst file)',
                               'give the path of an archive made by git ckpt archive')
        problems, manifest = transfer.verify(path), transfer.read_manifest(path)
    if problems:
        shown = ', '.join(str(p) for p in problems[:5])
        more = f' and {len(problems) - 5} more' if len(problems) > 5 else ''
        raise GitCkptError(f'archive {path} does not match its manifest: {shown}{more}',
                           'nothing was restored; restore from another copy of the archive')
    return manifest


def restore_names(path: Path, manifest: dict) -> list[str]:
    """Top-level entries an archive brings back (not its manifests)."""
    skip = {C.TRANSFER_MANIFEST_NAME, C.MANIFEST_NAME}
    names = {rel.split('/', 1)[0] for rel in manifest.get('files', {})}
    names |= {rel.split('/', 1)[0] for rel in manifest.get('symlinks', {})}
    names |= {rel.split('/', 1)[0] for rel in manifest.get('dirs', [])}
    return sorted(names - skip)


def restore(path: Path, manifest: dict, target: Path, *, force: bool,
            progress: bool | None = None, within: Path | None = None,
            staged_only: bool = False) -> tuple[list[str], str]:
    """Bring a verified archive's entries into `target` (a dir inside the
    managed scratch dir `within`: what is replaced is deleted without
    following a symlink anywhere below it).  Returns (names restored,
    method: 'rename', 'copy', 'tar.zst', 'resumed' or 'already').

    Rerunnable after a kill at any point: the staging dir of an interrupted
    run is finished (its entries were verified when copied), and without
    `force` entries already in `target` exactly as archived count as restored.
    `staged_only`: the archive itself is gone (see find_staging); finish from
    the staging dir, whatever source its manifest names."""
    within = within or target
    names = restore_names(path, manifest)
    staging = target / f'{C.RESTORE_STAGING_PREFIX}{path.name}'
    staged = manifest if staged_only else _interrupted_restore(staging, path)
    pending = [n for n in names if os.path.lexists(staging / n)] if staged is not None else names
    in_place = [n for n in pending if os.path.lexists(target / n)]
    # --force replaces whatever is there, even an identical entry: the target
    # ends up exactly the archive's (a hard link to a file elsewhere included).
    conflicts = in_place if force else [n for n in in_place if not _holds_archived(target, n, manifest)]
    if conflicts and not force:
        raise GitCkptError(f'{target} already has {", ".join(conflicts[:5])}'
                           f'{" ..." if len(conflicts) > 5 else ""}',
                           'nothing was restored; use --force to replace them, or restore into another worktree')
    if staged is None:
        pending = [n for n in pending if n in conflicts or n not in in_place]
        if not pending:
            return names, 'already'
        method = _stage(path, staging, progress)
    else:
        bad = [n for n in pending if not _holds_archived(staging, n, staged)]
        if bad:
            raise GitCkptError(f'an earlier restore of {path.name} was interrupted and {staging / bad[0]} '
                               'does not match the archive', 'move what you need out of it, delete it, '
                               'then run restore again')
        method = 'resumed'
    for name in pending:
        victim = target / name
        if name not in conflicts and os.path.lexists(victim):
            dup = staging / name
            remove_tree(dup, within=within) if dup.is_dir() and not dup.is_symlink() else unlink_within(dup, within)
            continue  # already there as archived
        if victim.is_dir() and not victim.is_symlink():
            remove_tree(victim, within=within)
        elif os.path.lexists(victim):
            unlink_within(victim, within)
        os.rename(staging / name, target / name)
    _remove_staging(staging, within)
    if staged is not None and not staged_only and any(not os.path.lexists(target / n) for n in names):
        # What the killed run never staged.
        restore(path, manifest, target, force=force, progress=progress, within=within)
    return names, method


def _remove_staging(staging: Path, within: Path) -> None:
    """Its manifest last: a kill meanwhile leaves a staging dir find_staging
    and the rerun still recognise (or an empty one)."""
    remove_tree(staging, may_delete=lambda rel, st: rel != C.TRANSFER_MANIFEST_NAME, within=within)
    remove_tree(staging, within=within)


def _stage(path: Path, staging: Path, progress: bool | None) -> str:
    """Copy (or on one filesystem move) the archive's tree to `staging`."""
    if archive_format(path) == 'tar.zst':
        from git_ckpt import tarzst
        tarzst.unpack(path, staging, progress=progress)
        return 'tar.zst'
    same_fs = transfer.same_filesystem(path, staging.parent)
    result = transfer.transfer(path, staging, allow_rename=same_fs, progress=progress,
                               skip=(C.TRANSFER_MANIFEST_NAME, C.MANIFEST_NAME))
    return result.method


def _interrupted_restore(staging: Path, path: Path) -> dict | None:
    """The manifest of a staging dir a killed restore of `path` left complete
    (or {} for one it had emptied), None when there is none.  Raises for
    anything else under that name."""
    if not os.path.lexists(staging):
        return None
    if staging.is_dir() and not staging.is_symlink():
        data = transfer.read_manifest(staging)
        if data is not None and data.get('source') in (os.fspath(path), os.path.realpath(path)):
            return data
        if data is None and not any(os.scandir(staging)):
            return {'files': {}}
    # On one filesystem the archive itself was moved there: never deleted on a guess.
    raise GitCkptError(f'an earlier restore of {path.name} was interrupted; its files are in {staging}',
                       'move what you need out of it, delete it, then run restore again')


def _holds_archived(base: Path, name: str, manifest: dict) -> bool:
    """Whether `base/name` is exactly the archive's entry `name`: every file
    (size and sha256), symlink and dir, and nothing more."""
    def under(rel: str) -> bool:
        return rel == name or rel.startswith(f'{name}/')
    files = {rel: rec for rel, rec in manifest.get('files', {}).items() if under(rel)}
    links = {rel: t for rel, t in manifest.get('symlinks', {}).items() if under(rel)}
    dirs = {rel for rel in manifest.get('dirs', []) if under(rel)}
    if name in links:
        return os.path.islink(base / name) and os.readlink(base / name) == links[name]
    for rel, rec in files.items():
        if check_file(base / rel, rec.get('sha256'), rec.get('size', -1)):
            return False
    for rel, target in links.items():
        if not os.path.islink(base / rel) or os.readlink(base / rel) != target:
            return False
    if name in dirs:
        if not (base / name).is_dir() or (base / name).is_symlink():
            return False
        present = {f'{name}/{rel}' for rel in walk_names(base / name)}
        return present <= set(files) | set(links) | dirs
    return name in files
