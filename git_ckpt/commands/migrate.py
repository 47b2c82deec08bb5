"""`git ckpt migrate`: move existing data to scratch and leave links behind."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import ignore, links, migrate, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.output import human_size, info, warn
from git_ckpt.settings import load_settings, resolve_root


def describe(plan: migrate.Plan) -> str:
    size = human_size(plan.size)
    if plan.action == migrate.DONE and plan.src == plan.dest:
        return f'{plan.label}: {plan.src} is already off the home filesystem; nothing to move'
    if plan.action == migrate.DONE:
        return f'{plan.label}: already linked to {plan.dest}'
    if plan.action == migrate.LINK:
        return (f'{plan.label}: data already in {plan.dest} (an earlier run was interrupted); '
                'only the link is missing')
    if plan.action == migrate.FINISH:
        return (f'{plan.label} ({size}): its verified copy is already in {plan.dest}; '
                'the source is deleted next (an earlier run was interrupted)')
    if plan.method == 'rename':
        return f'{plan.label} ({size}) -> {plan.dest}: rename (same filesystem, nothing copied)'
    resume = ', resuming an interrupted copy' if plan.resuming else ''
    return (f'{plan.label} ({size}) -> {plan.dest}: copy, verify checksums, then delete the source'
            f'{resume}')


def report(moved: migrate.Moved) -> str:
    plan = moved.plan
    if plan.action == migrate.DONE and plan.src == plan.dest:
        return f'{plan.label}: {plan.src} is already off the home filesystem; nothing to move'
    if plan.action == migrate.DONE:
        return f'{plan.label}: already linked to {plan.dest}'
    if plan.action == migrate.LINK:
        return f'{plan.label}: linked to {plan.dest} (data was already there)'
    if plan.action == migrate.FINISH:
        return f'{plan.label}: source deleted, its verified copy is in {plan.dest}; linked'
    how = 'renamed' if plan.method == 'rename' else 'copied and verified'
    resumed = f' ({moved.resumed} already done by an interrupted run)' if moved.resumed else ''
    return f'{plan.label}: {human_size(plan.size)} {how} -> {plan.dest}{resumed}; linked'


def _summary(moves: list[migrate.Moved], source_fs: Path, home: Path) -> str:
    freed = sum(m.freed for m in moves)
    try:
        on_home = os.stat(source_fs).st_dev == os.stat(home).st_dev
    except OSError:
        on_home = False
    where = 'home got back' if on_home else f'the filesystem of {source_fs} got back'
    renamed = any(m.plan.method == 'rename' for m in moves)
    note = ' (a rename on the same filesystem frees nothing there)' if renamed else ''
    return f'migrated {len(moves)} dir(s); {where} {human_size(freed)}{note}'


def _choose(candidates: list[migrate.Candidate], *, yes: bool,
            dry_run: bool) -> list[migrate.Candidate] | None:
    """The candidates to move; None: listed only (no TTY to ask, no --yes)."""
    info('found in this worktree:')
    for c in candidates:
        info(f'  {c.rel:<28} {human_size(c.size):>8}  ({c.reason})')
    if yes or dry_run:
        return candidates
    if not sys.stdin.isatty():
        info('not a terminal, so nothing moved; rerun with the paths to move: '
             f'git ckpt migrate {" ".join(shlex.quote(c.rel) for c in candidates)}  (or --yes for all)')
        return None
    import click
    return [c for c in candidates if click.confirm(f'move {c.rel} ({human_size(c.size)}) to scratch?',
                                                   default=True)]


def migrate_command(paths: tuple[str, ...], *, hf_cache: bool, dry_run: bool, yes: bool) -> int:
    if hf_cache:
        if paths:
            raise GitCkptError('--hf-cache takes no PATH', 'run git ckpt migrate --hf-cache on its own')
        return _hf_cache(dry_run=dry_run)
    wt = worktree.current_worktree()
    settings = load_settings(wt.top)
    location = worktree.locate(wt, settings=settings)
    if paths:
        rels = list(dict.fromkeys(links.normalize(wt.top, p, Path.cwd()) for p in paths))
    else:
        candidates = migrate.find_candidates(location, settings)
        if not candidates:
            info('nothing to migrate: no checkpoint dirs, .art, outputs or linked dirs with data here')
            return 0
        chosen = _choose(candidates, yes=yes, dry_run=dry_run)
        if not chosen:
            return 0
        rels = [c.rel for c in chosen]
    plans = [migrate.plan_worktree_path(location, rel) for rel in rels]  # all checked before any move
    if dry_run:
        for plan in plans:
            info(f'would migrate {describe(plan)}')
        return 0
    from git_ckpt.lock import scratch_lock
    worktree.create_scratch_dir(location)
    moves = []
    with scratch_lock(location.scratch_dir, 'migrate'):
        for plan in plans:
            if plan.action != migrate.DONE:
                info(f'migrating {describe(plan)}')
            moved = migrate.migrate_worktree_path(location, plan, settings)
            info(report(moved))
            if plan.action != migrate.DONE:
                moves.append(moved)
    ignore.update_gitignore(wt.top, links.ignore_patterns(load_settings(wt.top)))
    if moves:
        info(_summary(moves, wt.top, Path.home()))
    return 0


def _hf_cache(*, dry_run: bool) -> int:
    from git_ckpt.scratch import check_root
    choice = resolve_root(None, load_settings(None))
    root_real = check_root(choice.path, create_fallback=choice.warning is not None)
    home = Path.home()
    plan = migrate.plan_hf_cache(root_real, home)
    export = f'export {C.ENV_HF_HOME}={shlex.quote(os.fspath(plan.dest))}'
    if choice.warning or os.stat(root_real).st_dev == os.stat(home).st_dev:
        warn(f'the scratch root {root_real} is on the home filesystem: moving the cache there frees nothing')
    if dry_run:
        info(f'would migrate {describe(plan)}')
        info(f'then add this line to your shell profile (~/.bashrc or ~/.zshrc):\n{export}')
        return 0
    if plan.action != migrate.DONE:
        info(f'migrating {describe(plan)}')
    moved = migrate.migrate_hf_cache(root_real, plan)
    info(report(moved).replace('; linked', f'; {plan.src} is now a link to it'))
    if plan.action != migrate.DONE:
        info(_summary([moved], plan.src.parent, home))
    info(f'add this line to your shell profile (~/.bashrc or ~/.zshrc):\n{export}')
    return 0
