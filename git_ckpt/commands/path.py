"""`git ckpt path`: print the current worktree's scratch dir."""
from __future__ import annotations

from git_ckpt import worktree
from git_ckpt.output import warn
from git_ckpt.settings import quiet


def path(*, create: bool, cli_root: str | None) -> int:
    """stdout gets the path and nothing else, so "$(git ckpt path)" is safe;
    the fallback-root warning goes to stderr (GIT_CKPT_QUIET=1 silences it)."""
    from_env = worktree.dir_from_env()
    if from_env is not None:
        # Batch jobs often run without the repository: no git at all.
        print(worktree.resolve_scratch_dir(create=create))
        return 0
    location = worktree.locate(worktree.current_worktree(), cli_root=cli_root, create_root=create)
    if location.root.warning and not quiet():
        warn(location.root.warning)
    if create:
        worktree.create_scratch_dir(location)
    print(location.scratch_dir)
    return 0
