"""`git ckpt archive` and `git ckpt restore`."""
from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from git_ckpt import archive, targets, transfer, worktree
from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.lock import scratch_lock
from git_ckpt.output import human_size, info, warn
from git_ckpt.scratch import ensure_private_dir, is_managed, read_manifest
from git_ckpt.settings import Settings, load_settings
from git_ckpt.state import root_of

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see git.py)
if TYPE_CHECKING:
    from collections.abc import Callable


def _run_dir(scratch_dir: Path, run: str) -> Path:
    rel = PurePosixPath(run.strip('/'))
    if not rel.parts or rel.is_absolute() or '..' in rel.parts:
        raise GitCkptError(f'--run {run!r} is not a path inside the scratch dir', 'e.g. --run run1')
    # Every component from the scratch dir down must be a real directory: a
    # symlink anywhere on the way would archive (a rename: move) what it points to.
    path = scratch_dir
    for part in ('', *rel.parts):
        path = path / part if part else path
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode):
            link = ' (a symlink: git-ckpt never follows one)' if st is not None and stat.S_ISLNK(st.st_mode) else ''
            raise GitCkptError(f'no run dir {scratch_dir / rel}: {path} is not a directory{link}',
                               'see the runs with: git ckpt status')
    return path


def archive_one(src: Path, scratch_dir: Path, manifest: dict, *, run: str | None, dest_root: Path,
                fmt: str, delete_source: bool, dry_run: bool,
                recreate: worktree.Location | None = None) -> archive.Archived | None:
    """Archive one scratch dir (or one run in it); None for a dry run, or when
    another git-ckpt process archived or deleted it first.  `recreate`: the
    live worktree of this scratch dir, which keeps its manifest (and gets its
    scratch dir made again should it go)."""
    name = archive.worktree_name(manifest, scratch_dir)
    base = archive.base_name(name, run)
    keep = (C.MANIFEST_NAME,) if recreate is not None and src == scratch_dir else ()
    if dry_run:
        finished = archive.interrupted_delete(dest_root, base, fmt, src, keep) if delete_source else None
        if finished:
            info(f'would delete what is left of {src}: {finished[0]} already holds its verified archive')
            return None
        dest, resuming = archive.choose_dest(dest_root, base, fmt, src)
        rename = fmt == 'dir' and transfer.same_filesystem(src, dest_root)
        how = ('rename: same filesystem, nothing copied' if rename else
               f'{"pack" if fmt == "tar.zst" else "copy"} and verify'
               f'{", then delete the source" if delete_source else ", source kept"}')
        from git_ckpt.disk_usage import dir_size
        info(f'would archive {src} ({human_size(dir_size(src))}) -> {dest}  ({how})')
        return None
    meta = {'kind': 'run' if run else 'worktree', 'run': run, 'worktree': manifest.get('worktree'),
            'worktree_id': manifest.get('worktree_id'), 'branch': manifest.get('branch'),
            'project': manifest.get('project'), 'scratch_dir': os.fspath(scratch_dir)}
    with scratch_lock(scratch_dir, 'archive'):
        # Everything below is decided under the lock: what we looked at before
        # may have been archived or deleted by another git-ckpt meanwhile, and
        # a name chosen before the lock may have been taken by it.
        if not _still_there(src, scratch_dir, manifest):
            info(f'{src} is not there any more (another git-ckpt archived or deleted it first); nothing to do')
            return None
        # A run killed while deleting the source: finish the delete, no second archive.
        finished = archive.interrupted_delete(dest_root, base, fmt, src, keep) if delete_source else None
        if finished:
            left = transfer.delete_listed(src, finished[1], keep=keep, within=scratch_dir)
            result = archive.Archived(src, finished[0], 'finish', 0, 0, 0, left, not os.path.lexists(src))
        else:
            dest, resuming = archive.choose_dest(dest_root, base, fmt, src)
            result = archive.make_archive(src, dest, fmt=fmt, delete_source=delete_source, meta=meta,
                                          within=scratch_dir, keep=keep)
        if recreate is not None and result.source_gone:
            worktree.create_scratch_dir(recreate)  # the live worktree keeps a (now empty) scratch dir
    if finished:
        info(f'{result.dest} already holds the verified archive of {src} (an earlier run was interrupted '
             'while deleting the source); deleted what was left of the source')
    else:
        resumed = f', {result.resumed} files resumed from an interrupted run' if resuming and result.resumed else ''
        info(f'archived {src} -> {dest}  ({result.method}, {targets.plural(result.files, "file")}, '
             f'{human_size(result.bytes)}{", verified" if result.method != "rename" else ""}{resumed})')
    if result.source_left:
        warn(f'{len(result.source_left)} files changed after they were copied and were kept in {src}: '
             f'{", ".join(result.source_left[:3])}{" ..." if len(result.source_left) > 3 else ""}')
    elif not result.source_gone and not delete_source:
        info(f'the source is kept ({src}); to free it: rerun with --delete-source')
    return result


def _still_there(src: Path, scratch_dir: Path, manifest: dict) -> bool:
    """The scratch dir we read `manifest` from is still managed by the same
    worktree id, and `src` in it is still a real directory."""
    now = read_manifest(scratch_dir)
    return (now is not None and now.get('worktree_id') == manifest.get('worktree_id')
            and src.is_dir() and not src.is_symlink())


def _manifest_under_lock(scratch_dir: Path) -> dict | None:
    """The scratch dir's manifest.  When it is missing, read it again under the
    lock: another archive may be moving the dir away and making it again right
    now (then the lock says so: "in use by ...")."""
    manifest = read_manifest(scratch_dir)
    if manifest is None and root_of(scratch_dir) is not None:
        with scratch_lock(scratch_dir, 'archive'):
            manifest = read_manifest(scratch_dir)
    return manifest


def archive_command(*, worktree_arg: str | None, to: str | None, orphans: bool, run: str | None,
                    fmt: str, delete_source: bool, dry_run: bool, cli_root: str | None,
                    started: Callable[[], tuple[worktree.Worktree, Settings]] | None = None) -> int:
    """`started`: worktree.start_current_with_settings() called by a caller
    that started git early (the fast path in __main__); None: asked here."""
    here, settings = (started or worktree.current_with_settings)()
    if orphans and (worktree_arg or run):
        raise GitCkptError('--orphans archives every orphaned scratch dir; it takes no WORKTREE or --run',
                           'drop WORKTREE/--run, or drop --orphans')
    wt = here if orphans else targets.resolve_worktree(worktree_arg, here)
    location = worktree.locate(wt, settings=settings, cli_root=cli_root)
    dest_root = archive.archive_root(to, settings, location.root_real, create=not dry_run)
    if orphans:
        jobs = [(o.scratch_dir, o.scratch_dir, o.manifest) for o in
                targets.orphans(location.project_dir, here.common_dir)]
        if not jobs:
            info('no orphaned scratch dirs for this repository')
            return 0
    else:
        manifest = _manifest_under_lock(location.scratch_dir)
        if manifest is None:
            raise GitCkptError(f'{wt.top} has no scratch dir yet ({location.scratch_dir})',
                               'nothing to archive')
        src = _run_dir(location.scratch_dir, run) if run else location.scratch_dir
        jobs = [(src, location.scratch_dir, manifest)]
    for src, scratch_dir, manifest in jobs:
        archive_one(src, scratch_dir, manifest, run=run, dest_root=dest_root, fmt=fmt,
                    delete_source=delete_source, dry_run=dry_run,
                    recreate=None if orphans or run else location)
    return 0


def restore_command(*, archive_arg: str, worktree_arg: str | None, force: bool, cli_root: str | None) -> int:
    here = worktree.current_worktree()
    settings = load_settings(here.top)
    wt = targets.resolve_worktree(worktree_arg, here)
    location = worktree.locate(wt, settings=settings, cli_root=cli_root)
    try:
        dest_root = archive.archive_root(None, settings, location.root_real, create=False)
    except GitCkptError:
        dest_root = None
    try:
        path = archive.find_archive(archive_arg, dest_root)
    except GitCkptError:
        staged = archive.find_staging(location.scratch_dir, archive_arg) if location.scratch_dir.is_dir() else None
        if staged is None:
            raise
        return _finish_staged(location, *staged, force=force)
    manifest = archive.check_archive(path)  # raises naming the bad files
    meta = manifest.get('meta') or {}
    worktree.create_scratch_dir(location)
    target = location.scratch_dir
    if meta.get('kind') == 'run' and meta.get('run'):
        target = _run_target(location, meta['run'])
    if not is_managed(location.scratch_dir):
        raise GitCkptError(f'{location.scratch_dir} is not a managed scratch dir', 'run git ckpt init')
    with scratch_lock(location.scratch_dir, 'restore'):
        names, method = archive.restore(path, manifest, target, force=force, within=location.scratch_dir)
    if method == 'already':
        info(f'{target} already holds every entry of {path} as archived (verified); nothing to restore')
        return 0
    kept = 'the archive was moved back (same filesystem)' if method == 'rename' else f'the archive is kept: {path}'
    if method == 'resumed':
        kept += '; an interrupted restore was finished'
    info(f'restored {len(names)} {"entry" if len(names) == 1 else "entries"} from {path} into {target} (verified; {kept})')
    for name in names:
        info(f'  {name}')
    return 0


def _finish_staged(location: worktree.Location, path: Path, target: Path, manifest: dict, *, force: bool) -> int:
    """A same-filesystem restore killed after it moved the archive into its
    staging dir: finish it from there (each entry is checked against the
    manifest before it is moved in)."""
    with scratch_lock(location.scratch_dir, 'restore'):
        names, _ = archive.restore(path, manifest, target, force=force, within=location.scratch_dir,
                                   staged_only=True)
    if not names:
        info(f'an interrupted restore of {path.name} had already put everything in place; '
             f'removed its empty staging dir in {target}')
        return 0
    info(f'restored {len(names)} {"entry" if len(names) == 1 else "entries"} into {target} from the staging '
         f'dir of an interrupted restore (verified; the archive had been moved there: same filesystem)')
    for name in names:
        info(f'  {name}')
    return 0


def _run_target(location: worktree.Location, run: str) -> Path:
    rel = PurePosixPath(run)
    if rel.is_absolute() or '..' in rel.parts:
        raise GitCkptError(f'the archive names an unsafe run dir {run!r}', 'nothing was restored')
    relative = location.scratch_dir.relative_to(location.root_real) / rel
    return ensure_private_dir(location.root_real, relative)
