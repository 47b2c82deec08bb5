"""Where root-level state (caches, locks) for a scratch dir lives.

State sits in the scratch root's STATE_DIR, never in the repository and never
inside the scratch dir itself (so deleting checkpoints never touches it):
    <root>/.git-ckpt/<kind>/<project dir>/<worktree dir><suffix>
A standalone dir (GIT_CKPT_DIR outside any root, see
scratch.mark_standalone_dir) has no root above it, and its parents are the
user's, not ours: its state goes in <dir>/.git-ckpt-state/<kind><suffix>
(prune deletes only checkpoints, so that stays too).
Standard library only.
"""
from __future__ import annotations

import os
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.scratch import ensure_private_dir, is_standalone, read_manifest


def real_scratch_dir(scratch_dir: Path) -> Path:
    """`scratch_dir` with its root spelled as the real path (one lock/cache
    whatever the spelling of the root, which may be a symlink), and its
    project and worktree dirs checked to be real directories: resolving a
    symlink planted there would put state next to whatever it points to,
    outside the root.  Raises GitCkptError for such a link."""
    scratch_dir = Path(os.path.abspath(scratch_dir))
    project = Path(os.path.realpath(scratch_dir.parent.parent)) / scratch_dir.parent.name
    for path in (project, project / scratch_dir.name):
        if os.path.islink(path):
            raise GitCkptError(f'{path} is a symlink where git-ckpt expects its own directory',
                               'remove the link (someone may be redirecting your checkpoints) and run again')
    return project / scratch_dir.name


def root_of(scratch_dir: Path) -> Path | None:
    """The scratch root above a managed scratch dir (<root>/<project>/<leaf>),
    or None when the dir is not laid out by git-ckpt."""
    scratch_dir = real_scratch_dir(scratch_dir)
    if (scratch_dir.parent / C.REPO_MANIFEST_NAME).is_file():
        return scratch_dir.parent.parent
    manifest = read_manifest(scratch_dir)
    if manifest is not None and not is_standalone(manifest):
        return scratch_dir.parent.parent
    return None


def state_file(scratch_dir: Path, kind: str, suffix: str, *, create: bool = True) -> Path:
    """The path of one state file for `scratch_dir`; its parent dirs are
    created private (0700, owned by us) when `create`.  Raises GitCkptError
    for a dir git-ckpt does not manage, or one reached through a symlink
    below the root."""
    scratch_dir = real_scratch_dir(scratch_dir)
    root = root_of(scratch_dir)
    if root is None and is_standalone(read_manifest(scratch_dir)):
        return ensure_private_dir(scratch_dir, C.STANDALONE_STATE_DIR, create=create) / f'{kind}{suffix}'
    if root is None:
        raise GitCkptError(f'{scratch_dir} is not a scratch dir managed by git-ckpt (no {C.MANIFEST_NAME})',
                           'give the path of a worktree scratch dir (see git ckpt status)')
    relative = Path(C.STATE_DIR) / kind / scratch_dir.parent.name
    parent = ensure_private_dir(root, relative, create=create)
    return parent / f'{scratch_dir.name}{suffix}'
