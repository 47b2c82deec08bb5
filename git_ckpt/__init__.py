"""git-ckpt: per-worktree checkpoint storage on scratch.

`import git_ckpt` stays light: no click, no transformers, no torch.
"""
from __future__ import annotations

from git_ckpt.constants import VERSION as __version__
from git_ckpt.errors import GitCkptError

__all__ = ['GitCkptError', '__version__']
