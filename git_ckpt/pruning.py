"""Pruning one scratch dir (or one run in it) under its lock: the part shared by
`git ckpt prune`, `git_ckpt.prune()` and `setup(keep=N)`.

The policy itself is retention.plan/apply; this module picks the runs, takes
the lock, and returns the plan.  The callers only print.  Standard library only.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, NamedTuple

from git_ckpt import constants as C
from git_ckpt import inventory, retention
from git_ckpt.errors import GitCkptError
from git_ckpt.lock import scratch_lock
from git_ckpt.scratch import is_managed
from git_ckpt.state import root_of


def locate_run(path: str | os.PathLike[str]) -> tuple[Path, Path | None]:
    """(managed scratch dir, run path or None when `path` is the scratch dir itself).

    `path` may also be a link into a scratch dir, such as the one setup()
    leaves in the worktree (out -> <scratch>/out): it is resolved once, here;
    deleting still goes from the scratch dir down, following no link."""
    target = Path(os.path.abspath(path))
    if not target.exists():
        raise GitCkptError(f'{path} does not exist', 'give a run dir inside a scratch dir (see git ckpt status)')
    real = Path(os.path.realpath(target))
    for spelling in (target, real) if real != target else (target,):
        for candidate in (spelling, *spelling.parents):
            if is_managed(candidate):
                return candidate, None if candidate == spelling else spelling
    raise GitCkptError(f'{path} is not inside a scratch dir managed by git-ckpt (no {C.MANIFEST_NAME})',
                       'nothing was deleted; give a run dir under a worktree scratch dir')


def only_runs(inv: inventory.ScratchInventory, run_path: Path | None,
              exact: bool = False) -> inventory.ScratchInventory:
    """The inventory restricted to the runs at (or, unless `exact`, under) run_path."""
    if run_path is None:
        return inv
    runs = [r for r in inv.runs if r.path == run_path or (not exact and run_path in r.path.parents)]
    if not runs:
        raise GitCkptError(f'{run_path} holds no checkpoints', 'give a run dir (one that contains checkpoint-*)')
    return inventory.ScratchInventory(inv.scratch_dir, runs, sum(r.size for r in runs), inv.newest_mtime,
                                      inv.problems, inv.exists)


def _not_managed(scratch_dir: Path) -> GitCkptError:
    # e.g. a GIT_CKPT_DIR that already held files when first used
    return GitCkptError(f'{scratch_dir} is not a scratch dir managed by git-ckpt (no {C.MANIFEST_NAME})',
                        'nothing was deleted; git-ckpt deletes only in dirs it manages (a GIT_CKPT_DIR '
                        'is managed when setup() or git ckpt path created it or found it empty)')


def prune_scratch_dir(scratch_dir: Path, keep: int, *, run_path: Path | None = None, exact: bool = False,
                      keep_best: bool = True, grace: float = C.PRUNE_GRACE_SECONDS, dry_run: bool = False,
                      progress: Callable | None = None, command: str = 'prune') -> retention.PrunePlan:
    """Plan, and unless dry_run delete under the scratch dir's lock (non-blocking:
    GitCkptError naming the holder when another command has it).  The returned
    plan lists what went (`deleted`), what could not (`failures`) and what
    could not be judged (`problems`)."""
    if grace < 0:
        raise GitCkptError(f'--grace must not be negative (got {grace:g})', 'give seconds, e.g. --grace 300')
    # A dir laid out under the root is judged under its lock: `archive`
    # renames it away and re-creates it while holding that lock, and prune
    # must then name the holder, not call the dir unmanaged.
    if not is_managed(scratch_dir) and (dry_run or root_of(scratch_dir) is None):
        raise _not_managed(scratch_dir)
    if dry_run:  # read-only: no lock needed
        return retention.plan(only_runs(inventory.scan(scratch_dir), run_path, exact), keep, keep_best, grace)
    with scratch_lock(scratch_dir, command):
        if not is_managed(scratch_dir):
            raise _not_managed(scratch_dir)
        # Scan under the lock: what we delete is what we just saw.
        plan = retention.plan(only_runs(inventory.scan(scratch_dir), run_path, exact), keep, keep_best, grace)
        retention.apply(plan, progress)
    return plan


class PruneResult(NamedTuple):
    """What `git_ckpt.prune()` did.  With dry_run, `deleted` and `bytes_freed`
    are what would go; nothing was touched."""
    deleted: list[Path]
    bytes_freed: int
    kept: list[Path]
    problems: list[str]   # could not be judged: kept
    failures: list[str]   # meant to go but left in place, and why
    dry_run: bool


def prune(keep: int, *, path: str | os.PathLike[str] | None = None, keep_best: bool = True,
          grace: float = C.PRUNE_GRACE_SECONDS, dry_run: bool = False) -> PruneResult:
    """`git ckpt prune --keep N [PATH]` from Python: the current worktree's
    scratch dir (GIT_CKPT_DIR if set), or only the run dir `path`."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise GitCkptError(f'keep must be an integer of at least 1 (got {keep!r})',
                           'keep at least the newest checkpoint; git ckpt remove drops a whole scratch dir')
    if path is not None:
        scratch_dir, run_path = locate_run(path)
    else:
        from git_ckpt import worktree
        scratch_dir, run_path = worktree.resolve_scratch_dir(create=False), None
        if not scratch_dir.is_dir():
            return PruneResult([], 0, [], [], [], dry_run)
    plan = prune_scratch_dir(scratch_dir, keep, run_path=run_path, keep_best=keep_best, grace=grace,
                             dry_run=dry_run, command=f'prune --keep {keep}')
    gone = plan.to_delete if dry_run else plan.deleted
    gone_ids = {id(c) for c in gone}
    return PruneResult([c.path for c in gone], sum(c.size for c in gone),
                       [d.checkpoint.path for d in plan.decisions if id(d.checkpoint) not in gone_ids],
                       list(plan.problems), list(plan.failures), dry_run)
