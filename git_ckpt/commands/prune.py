"""`git ckpt prune --keep N`: delete old checkpoints, keeping what matters."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import pruning, retention, workers, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.inventory_workers import scan_many
from git_ckpt.output import human_size, info, warn


def _targets(path: str | None, all_worktrees: bool, cli_root: str | None) -> list[tuple[Path, Path | None]]:
    """(scratch dir, only this run path or None) pairs to prune."""
    if path is not None:
        return [pruning.locate_run(path)]
    if all_worktrees:
        wt = worktree.current_worktree()
        location = worktree.locate(wt, cli_root=cli_root)
        entries = worktree.scratch_entries(location.project_dir, wt.common_dir)
        return [(e.scratch_dir, None) for e in entries if not e.is_orphan]
    return [(worktree.resolve_scratch_dir(create=False, cli_root=cli_root), None)]


class _Progress:
    """A progress bar on stderr, shown only once deleting takes a moment (and on a TTY)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()  # once, not once per checkpoint
        self.bar = None
        self.task = None

    def __call__(self, done: int, total: int, ckpt) -> None:
        if self.bar is None:
            if not self.tty or time.monotonic() - self.start < C.PROGRESS_AFTER_SECONDS:
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
    lines = []
    for decision in plan.decisions:
        ckpt = decision.checkpoint
        rel = _shown(ckpt.path, base)
        if decision.delete:
            if dry_run:
                lines.append(f'{verb} {rel} ({human_size(ckpt.size)}): {"; ".join(decision.reasons)}')
        else:
            lines.append(f'keep   {rel} ({human_size(ckpt.size)}): {"; ".join(decision.reasons)}')
    _print_lines(lines)


def _print_lines(lines: list[str]) -> None:
    """One write for thousands of lines (stdout may be unbuffered: PYTHONUNBUFFERED)."""
    if lines:
        info('\n'.join(lines))


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
    targets = _targets(path, all_worktrees, cli_root)
    existing = [d for d, _ in targets if d.is_dir()]
    if workers.worker_count(len(existing)) > 1:
        # Walk the scratch dirs in parallel first (status's workers fill the size
        # caches); the scan under each lock then re-validates every cached checkpoint
        # (one lstat per directory) instead of walking every file one dir at a time.
        # Without workers this would only add a second scan, so it is skipped.
        scan_many(existing)
    for scratch_dir, run_path in targets:
        # Paths are shown relative to the scratch dir, or to the project dir
        # (so they name the worktree's dir) when several worktrees are pruned.
        base = scratch_dir.parent if all_worktrees else scratch_dir
        if not scratch_dir.is_dir():
            info(f'{scratch_dir}: no scratch dir yet, nothing to prune')
            continue
        progress = None if dry_run else _Progress()
        try:
            plan = pruning.prune_scratch_dir(scratch_dir, keep, run_path=run_path, keep_best=keep_best,
                                             grace=grace, dry_run=dry_run, progress=progress)
        finally:
            if progress is not None:
                progress.close()
        _report(plan, dry_run, base)
        if dry_run:
            total_planned += plan.bytes_freed
            for problem in plan.problems:
                warn(problem)
            continue
        _print_lines([f'deleted {_shown(leftover, base)} (left by an interrupted prune)' for leftover in plan.leftovers]
                     + [f'deleted {_shown(ckpt.path, base)} ({human_size(ckpt.size)})' for ckpt in plan.deleted])
        for problem in plan.problems:
            warn(problem)
        for failure in plan.failures:
            warn(failure)
            failed = True
        total_freed += sum(c.size for c in plan.deleted)
    if dry_run:
        info(f'dry run: would free {human_size(total_planned)} (nothing deleted)')
    else:
        info(f'freed {human_size(total_freed)}')
    return 1 if failed else 0
