"""`git ckpt prune --keep N`: delete old checkpoints, keeping what matters."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import inventory, retention, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.lock import scratch_lock
from git_ckpt.output import human_size, info, warn
from git_ckpt.scratch import is_managed


def _targets(path: str | None, all_worktrees: bool, cli_root: str | None) -> list[tuple[Path, Path | None]]:
    """(scratch dir, only this run path or None) pairs to prune."""
    if path is not None:
        target = Path(os.path.abspath(path))
        if not target.exists():
            raise GitCkptError(f'{path} does not exist', 'give a run dir inside a scratch dir (see git ckpt status)')
        for candidate in (target, *target.parents):
            if is_managed(candidate):
                return [(candidate, None if candidate == target else target)]
        raise GitCkptError(f'{path} is not inside a scratch dir managed by git-ckpt (no {C.MANIFEST_NAME})',
                           'nothing was deleted; give a run dir under a worktree scratch dir')
    if all_worktrees:
        wt = worktree.current_worktree()
        location = worktree.locate(wt, cli_root=cli_root)
        entries = worktree.scratch_entries(location.project_dir, wt.common_dir)
        return [(e.scratch_dir, None) for e in entries if not e.is_orphan]
    return [(worktree.resolve_scratch_dir(create=False, cli_root=cli_root), None)]


def _only(inv: inventory.ScratchInventory, run_path: Path | None) -> inventory.ScratchInventory:
    """The inventory restricted to the runs at or under run_path."""
    if run_path is None:
        return inv
    runs = [r for r in inv.runs if r.path == run_path or run_path in r.path.parents]
    if not runs:
        raise GitCkptError(f'{run_path} holds no checkpoints', 'give a run dir (one that contains checkpoint-*)')
    return inventory.ScratchInventory(inv.scratch_dir, runs, sum(r.size for r in runs), inv.newest_mtime,
                                      inv.problems, inv.exists)


class _Progress:
    """A progress bar on stderr, shown only once deleting takes a moment (and on a TTY)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.bar = None
        self.task = None

    def __call__(self, done: int, total: int, ckpt) -> None:
        if self.bar is None:
            if not sys.stderr.isatty() or time.monotonic() - self.start < C.PROGRESS_AFTER_SECONDS:
                return
            from rich.console import Console
            from rich.progress import Progress
            self.bar = Progress(console=Console(file=sys.stderr, no_color='NO_COLOR' in os.environ),
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task('deleting checkpoints', total=total)
        self.bar.update(self.task, completed=done, description=f'deleting {ckpt.name}')

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _shown(path: Path, base: Path) -> str:
    """path relative to base; a prefix cut, as os.path.relpath is slow over thousands of lines."""
    prefix, text = os.fspath(base).rstrip('/') + '/', os.fspath(path)
    return text[len(prefix):] if text.startswith(prefix) else os.path.relpath(text, base)


def _report(plan: retention.PrunePlan, dry_run: bool, base: Path) -> None:
    verb = 'would delete' if dry_run else 'delete'
    for decision in plan.decisions:
        ckpt = decision.checkpoint
        rel = _shown(ckpt.path, base)
        if decision.delete:
            if dry_run:
                info(f'{verb} {rel} ({human_size(ckpt.size)}): {"; ".join(decision.reasons)}')
        else:
            info(f'keep   {rel} ({human_size(ckpt.size)}): {"; ".join(decision.reasons)}')


def prune_command(*, keep: int, all_worktrees: bool, path: str | None, grace: float,
                  keep_best: bool, dry_run: bool, cli_root: str | None) -> int:
    if keep < 1:
        raise GitCkptError(f'--keep must be at least 1 (got {keep})',
                           'keep at least the newest checkpoint; git ckpt remove drops a whole scratch dir')
    if grace < 0:
        raise GitCkptError(f'--grace must not be negative (got {grace:g})', 'give seconds, e.g. --grace 300')
    if path is not None and all_worktrees:
        raise GitCkptError('PATH and --all-worktrees exclude each other', 'give one of them')
    failed = False
    total_freed = total_planned = 0
    for scratch_dir, run_path in _targets(path, all_worktrees, cli_root):
        # Paths are shown relative to the scratch dir, or to the project dir
        # (so they name the worktree's dir) when several worktrees are pruned.
        base = scratch_dir.parent if all_worktrees else scratch_dir
        if not scratch_dir.is_dir():
            info(f'{scratch_dir}: no scratch dir yet, nothing to prune')
            continue
        if dry_run:  # read-only: no lock needed
            plan = retention.plan(_only(inventory.scan(scratch_dir), run_path), keep, keep_best, grace)
            _report(plan, True, base)
            total_planned += plan.bytes_freed
            for problem in plan.problems:
                warn(problem)
            continue
        with scratch_lock(scratch_dir, 'prune'):
            inv = inventory.scan(scratch_dir)
            plan = retention.plan(_only(inv, run_path), keep, keep_best, grace)
            _report(plan, False, base)
            progress = _Progress()
            try:
                freed = retention.apply(plan, progress)
            finally:
                progress.close()
        for ckpt in plan.deleted:
            info(f'deleted {_shown(ckpt.path, base)} ({human_size(ckpt.size)})')
        for problem in plan.problems:
            warn(problem)
        for failure in plan.failures:
            warn(failure)
            failed = True
        total_freed += freed
    if dry_run:
        info(f'dry run: would free {human_size(total_planned)} (nothing deleted)')
    else:
        info(f'freed {human_size(total_freed)}')
    return 1 if failed else 0
