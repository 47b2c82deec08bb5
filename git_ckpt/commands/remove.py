"""`git ckpt remove` (a worktree, asking what becomes of its checkpoints)
and `git ckpt gc` (the scratch dirs of worktrees that went some other way).

Order in `remove`: `git worktree remove` runs FIRST.  If git refuses (a dirty
or locked worktree without --force), nothing else has happened: the scratch
dir is exactly as it was.  Only after git removed the worktree is the scratch
dir archived or deleted; if that fails, the dir is intact as an orphan and
`git ckpt gc` offers it again.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from git_ckpt import archive, git, inventory, targets, worktree
from git_ckpt.commands.archive import archive_one
from git_ckpt.errors import GitCkptError, error_line
from git_ckpt.lock import scratch_lock
from git_ckpt.output import human_size, info
from git_ckpt.scratch import read_manifest
from git_ckpt.settings import load_settings


def _apply(action: str, scratch_dir: Path, manifest: dict, dest_root_of) -> None:
    if action == 'archive':
        archive_one(scratch_dir, scratch_dir, manifest, run=None, dest_root=dest_root_of(), fmt='dir',
                    delete_source=True, dry_run=False)
    elif action == 'delete':
        with scratch_lock(scratch_dir, 'delete'):
            if not os.path.lexists(scratch_dir):  # another gc/remove got the lock first
                info(f'{scratch_dir} is not there any more (another git-ckpt deleted or archived it first)')
                return
            archive.delete_scratch_dir(scratch_dir)
        info(f'deleted {scratch_dir}')


def _later(scratch_dir: Path) -> str:
    return (f'kept {scratch_dir}; deal with it later: git ckpt gc --archive (or --delete), '
            f'or git ckpt gc on a terminal to choose')


def remove_command(*, worktree_arg: str, action: str | None, yes: bool, force: bool, dry_run: bool,
                   cli_root: str | None) -> int:
    here = worktree.current_worktree()
    wt = targets.resolve_worktree(worktree_arg, here)
    if wt.is_main:
        raise GitCkptError(f'{wt.top} is the main worktree', 'git ckpt remove removes linked worktrees only')
    settings = load_settings(wt.top)
    location = worktree.locate(wt, settings=settings, cli_root=cli_root)
    scratch_dir = location.scratch_dir
    manifest = read_manifest(scratch_dir)
    info(f'worktree {wt.top}')
    if manifest is None:
        info(f'scratch dir: none ({scratch_dir} is not there)')
    else:
        inv = inventory.scan(scratch_dir)
        info(f'scratch dir {scratch_dir}: {targets.summary(inv)}')
        for line in targets.describe_lines(inv):
            info(line)
        if action is None:
            if targets.interactive():
                action = targets.ask_action(f'Remove {wt.top.name}: its checkpoints?')
            else:
                action = 'keep'
                info('no terminal to ask and no --archive/--delete/--keep: the scratch dir is kept')
        if action == 'cancel':
            info('cancelled; nothing changed')
            return 1
        if action == 'delete' and targets.interactive() and not yes and not dry_run:
            if not targets.confirm(f'Delete {scratch_dir} ({human_size(inv.size)}) for good?'):
                info('cancelled; nothing changed')
                return 1
    flag = ' --force' if force else ''
    if dry_run:
        info(f'would run: git worktree remove{flag} {wt.top}')
        if manifest is not None:
            _dry_run_plan(action, scratch_dir, manifest, location, settings)
        return 0
    proc = git.worktree_remove(wt.top, force=force, cwd=wt.common_dir)
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f'exit {proc.returncode}'])[-1]
        why = why.removeprefix('fatal: ')
        raise GitCkptError(f'git worktree remove refused: {why}',
                           'the worktree and its scratch dir are left as they were; commit or stash, '
                           'or use --force to remove it anyway' if not force else 'see git\'s message')
    info(f'removed worktree {wt.top}')
    if manifest is None:
        return 0
    if action == 'keep':
        info(_later(scratch_dir))
        return 0
    try:
        _apply(action, scratch_dir, manifest,
               lambda: archive.archive_root(None, settings, location.root_real))
    except GitCkptError as exc:
        raise GitCkptError(f'the worktree was removed, but its scratch dir was not {action}d: {exc.problem}',
                           f'{scratch_dir} is intact; retry with git ckpt gc --{action}') from None
    return 0


def _dry_run_plan(action: str, scratch_dir: Path, manifest: dict, location, settings) -> None:
    if action == 'archive':
        dest_root = archive.archive_root(None, settings, location.root_real, create=False)
        archive_one(scratch_dir, scratch_dir, manifest, run=None, dest_root=dest_root, fmt='dir',
                    delete_source=True, dry_run=True)
    elif action == 'delete':
        info(f'would delete {scratch_dir}')
    else:
        info(f'would keep {scratch_dir}')


def gc_command(*, action: str | None, dry_run: bool, yes: bool, cli_root: str | None) -> int:
    here = worktree.current_worktree()
    settings = load_settings(here.top)
    location = worktree.locate(here, settings=settings, cli_root=cli_root)
    found = targets.orphans(location.project_dir, here.common_dir)
    if not found:
        info('no orphaned scratch dirs for this repository')
        return 0
    sizes = {}
    for orphan in found:
        inv = inventory.scan(orphan.scratch_dir)
        sizes[orphan.scratch_dir] = inv.size
        was = orphan.manifest.get('worktree', '?')
        info(f'{orphan.scratch_dir}  {targets.summary(inv)}  (worktree {was}, '
             f'created {str(orphan.manifest.get("created", "?"))[:10]})')
    total = sum(sizes.values())
    info(f'{len(found)} orphaned scratch dir{"" if len(found) == 1 else "s"}, {human_size(total)} in total')

    def dest_root():
        return archive.archive_root(None, settings, location.root_real, create=not dry_run)

    if dry_run:
        if action is None:
            info('dry run: nothing done; choose with git ckpt gc --archive or --delete')
        for orphan in found:
            if action == 'archive':
                archive_one(orphan.scratch_dir, orphan.scratch_dir, orphan.manifest, run=None,
                            dest_root=dest_root(), fmt='dir', delete_source=True, dry_run=True)
            elif action == 'delete':
                info(f'would delete {orphan.scratch_dir}')
        return 0
    if action is None and not targets.interactive():
        info('no terminal to ask: nothing done; run git ckpt gc --archive or git ckpt gc --delete')
        return 0
    if action == 'delete' and targets.interactive() and not yes:
        if not targets.confirm(f'Delete these {len(found)} dirs ({human_size(total)}) for good?'):
            info('cancelled; nothing changed')
            return 1
    failures = 0
    for orphan in found:
        choice = action
        if choice is None:
            choice = targets.ask_action(f'{orphan.scratch_dir.name} ({human_size(sizes[orphan.scratch_dir])}):')
            if choice == 'cancel':
                info('cancelled; the rest is left as it is')
                break
        if choice == 'keep':
            info(f'kept {orphan.scratch_dir}')
            continue
        try:
            _apply(choice, orphan.scratch_dir, orphan.manifest, dest_root)
        except GitCkptError as exc:
            failures += 1
            print(error_line(exc), file=sys.stderr)
    return 1 if failures else 0
