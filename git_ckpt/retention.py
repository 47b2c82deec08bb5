"""The retention policy of `git ckpt prune` and `setup(keep=N)`: which
checkpoints to delete (`plan`), and deleting them safely (`apply`).

Policy per run: keep the N highest steps (integers, among complete
checkpoints), and always keep the best checkpoint (unless keep_best=False),
the most recently written complete checkpoint (a fresh run in a reused
output_dir has lower steps than a stale one), every in-progress or incomplete
checkpoint, and anything modified within the grace window.  Whatever cannot
be judged (unreadable, corrupt trainer_state.json, best unknown) is kept and
reported: nothing is deleted on a guess.
Standard library only.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from git_ckpt import constants as C
from git_ckpt import workers
from git_ckpt.errors import GitCkptError
from git_ckpt.inventory import Checkpoint, Run, ScratchInventory
from git_ckpt.safe_delete import is_real_dir, lstat_at, open_managed_dir, open_parent, rmtree_at
from git_ckpt.scratch import is_managed


@dataclass
class Decision:
    checkpoint: Checkpoint
    run: Run
    delete: bool
    reasons: list[str]   # why it is kept, or why it goes


@dataclass
class PrunePlan:
    scratch_dir: Path
    keep: int
    keep_best: bool
    grace_seconds: float
    decisions: list[Decision] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # what was skipped and why
    deleted: list[Checkpoint] = field(default_factory=list)  # filled by apply()
    failures: list[str] = field(default_factory=list)        # filled by apply()
    leftovers: list[Path] = field(default_factory=list)      # filled by apply(): trash of a killed prune

    @property
    def to_delete(self) -> list[Checkpoint]:
        return [d.checkpoint for d in self.decisions if d.delete]

    @property
    def bytes_freed(self) -> int:
        return sum(c.size for c in self.to_delete)


def _managed_ancestor(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if is_managed(candidate):
            return candidate
    return None


def plan(run_or_inventory: Run | ScratchInventory, keep: int, keep_best: bool = True,
         grace_seconds: float = C.PRUNE_GRACE_SECONDS, now: float | None = None) -> PrunePlan:
    """Decide, per checkpoint, keep or delete and why.  Deletes nothing."""
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise GitCkptError(f'--keep must be at least 1 (got {keep})',
                           'keep the newest checkpoint at least; use git ckpt remove to drop a whole dir')
    if isinstance(run_or_inventory, ScratchInventory):
        runs, scratch_dir = run_or_inventory.runs, run_or_inventory.scratch_dir
    else:
        runs, scratch_dir = [run_or_inventory], _managed_ancestor(run_or_inventory.path)
    if scratch_dir is None or not is_managed(scratch_dir):
        where = scratch_dir or run_or_inventory.path
        raise GitCkptError(f'{where} is not inside a scratch dir managed by git-ckpt (no {C.MANIFEST_NAME})',
                           'nothing was deleted; prune only works on git-ckpt scratch dirs')
    now = time.time() if now is None else now
    result = PrunePlan(scratch_dir, keep, keep_best, grace_seconds)
    if isinstance(run_or_inventory, ScratchInventory):
        result.problems.extend(run_or_inventory.problems)  # what the scan could not judge
    for run in runs:
        _plan_run(run, result, now)
    return result


def _plan_run(run: Run, result: PrunePlan, now: float) -> None:
    # Only usable checkpoints count towards N: a crashed or corrupt one must not
    # push the newest usable checkpoint out.
    complete = [c for c in run.checkpoints
                if c.complete and c.step is not None and not (c.in_progress or c.error or c.state_error)]
    highest = {id(c) for c in sorted(complete, key=lambda c: c.step)[-result.keep:]}
    newest = max(complete, key=lambda c: (c.mtime, c.step), default=None)
    best_unknown = result.keep_best and run.best_error is not None
    if best_unknown:
        result.problems.append(f'{run.path}: best checkpoint unknown ({run.best_error}); '
                               'kept every checkpoint of this run (fix it, or use --no-keep-best)')
    for ckpt in run.checkpoints:
        reasons = []
        if ckpt.error:
            reasons.append(f'unreadable ({ckpt.error})')
            result.problems.append(f'{ckpt.path}: skipped, cannot be read fully')
        if ckpt.state_error:
            reasons.append(ckpt.state_error)
            result.problems.append(f'{ckpt.path}: skipped, {ckpt.state_error}')
        if ckpt.in_progress:
            reasons.append('in progress')
        elif not ckpt.complete:
            reasons.append(f'incomplete (no {C.TRAINER_STATE_NAME})' if ckpt.kind == 'hf' else 'empty')
        if id(ckpt) in highest:
            reasons.append(f'among the {result.keep} highest steps')
        if result.keep_best and run.best is ckpt:
            reasons.append('best checkpoint')
        if ckpt is newest and id(ckpt) not in highest:
            reasons.append('most recently written')
        age = now - ckpt.mtime
        if age < result.grace_seconds:
            reasons.append(f'modified {max(age, 0):.0f}s ago (grace {result.grace_seconds:g}s)')
        if best_unknown:
            reasons.append('best checkpoint unknown')
        delete = not reasons
        if delete:
            reasons.append(f'older than the {result.keep} highest steps')
        result.decisions.append(Decision(ckpt, run, delete, reasons))


def apply(plan: PrunePlan, progress: Callable[[int, int, Checkpoint], None] | None = None) -> int:
    """Delete what `plan` says; returns bytes freed.  Each checkpoint is re-checked
    right before it goes (still a real dir, same inode, not modified within the
    grace window), renamed aside, then deleted by fd.  What could not be deleted
    is listed in plan.failures; plan.deleted lists what went (in plan order).
    Trash dirs a killed prune left in these runs go first (plan.leftovers).

    Big prunes delete several checkpoints at a time in forked workers (unlinks
    are syscall-bound; see workers.forked_map), each checkpoint by exactly the
    same _delete_one, relative to the same managed-dir fd."""
    targets = plan.to_delete
    parents = sorted({d.checkpoint.path.parent for d in plan.decisions})
    if not targets and not parents:
        return 0
    done = 0

    def reported(index: int, why: str | None) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(targets), targets[index])

    base_fd = open_managed_dir(plan.scratch_dir)
    try:
        for parent in parents:
            _remove_leftovers(base_fd, plan, parent)
        whys = workers.forked_map(lambda ckpt: _delete_one(base_fd, plan, ckpt), targets,
                                  workers.worker_count(len(targets), DELETE_MIN_PER_WORKER),
                                  on_result=reported)
    finally:
        os.close(base_fd)
    freed = 0
    for ckpt, why in zip(targets, whys):
        if why is None:
            plan.deleted.append(ckpt)
            freed += ckpt.size
        else:
            plan.failures.append(f'{ckpt.path}: {why}')
    return freed


DELETE_MIN_PER_WORKER = 8  # a fork costs more than deleting a few small checkpoints


def _remove_leftovers(base_fd: int, plan: PrunePlan, parent: Path) -> None:
    """Delete the trash dirs (renamed-aside checkpoints) a prune killed mid-delete
    left in `parent`.  Called under the scratch dir's lock, so no live prune owns
    them: without this they would hold their space forever."""
    try:
        parent_fd = open_parent(base_fd, _inside(parent / 'x', plan.scratch_dir))
    except (OSError, ValueError):
        return  # the checkpoints of this dir are refused the same way, with a reason
    try:
        with os.scandir(parent_fd) as it:
            names = [e.name for e in it if e.name.startswith(C.PRUNE_TRASH_PREFIX)
                     and e.is_dir(follow_symlinks=False)]
        for name in names:
            try:
                rmtree_at(parent_fd, name)
                plan.leftovers.append(parent / name)
            except OSError as exc:
                plan.failures.append(f'{parent / name}: leftover of an interrupted prune, '
                                     f'could not delete: {exc.strerror or exc}')
    finally:
        os.close(parent_fd)


def _inside(path: Path, base: Path) -> PurePosixPath:
    """`path` relative to `base` (a string prefix test: os.path.relpath cost more
    than the unlinks on big prunes).  ValueError if it is not under `base`."""
    prefix = os.fspath(base).rstrip('/') + '/'
    text = os.fspath(path)
    if not text.startswith(prefix):
        raise ValueError(f'{path} is not inside {base}')
    return PurePosixPath(text[len(prefix):])


def _delete_one(base_fd: int, plan: PrunePlan, ckpt: Checkpoint) -> str | None:
    """Delete one checkpoint; None on success, else why it was left alone."""
    try:
        relative = _inside(ckpt.path, plan.scratch_dir)
        parent_fd = open_parent(base_fd, relative)
    except (OSError, ValueError) as exc:
        return f'not deleted: its path cannot be opened safely ({getattr(exc, "strerror", exc)})'
    name = relative.name
    trash = f'{C.PRUNE_TRASH_PREFIX}{name}-{os.getpid()}'
    try:
        st = lstat_at(parent_fd, name)
        if not is_real_dir(st):
            return 'not deleted: it is no longer a directory (a symlink or gone)'
        if st.st_uid != os.geteuid():
            # Root could delete it, but it is someone else's (planted in a
            # window when the dir was writable): not ours to judge or delete.
            from git_ckpt.scratch import owner_name
            return (f'not deleted: it is owned by {owner_name(st.st_uid)}, not you; '
                    'someone put it in your scratch dir: check it and remove it yourself')
        if ckpt.inode and st.st_ino != ckpt.inode:
            return 'not deleted: it was replaced since it was scanned'
        if time.time() - st.st_mtime < plan.grace_seconds:
            return 'not deleted: it was modified since it was scanned'
        os.rename(name, trash, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        moved = lstat_at(parent_fd, trash)
        if not is_real_dir(moved) or moved.st_ino != st.st_ino:
            os.rename(trash, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            return 'not deleted: it changed while being deleted'
        rmtree_at(parent_fd, trash)
        return None
    except OSError as exc:
        where = f' (what is left is in {ckpt.path.parent / trash})' if lstat_at(parent_fd, trash) else ''
        return f'could not delete: {exc.strerror or exc}{where}'
    finally:
        os.close(parent_fd)
