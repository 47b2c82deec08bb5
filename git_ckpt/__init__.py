"""git-ckpt: per-worktree checkpoint storage on scratch.

`import git_ckpt` stays light: no click, no transformers, no torch.
"""
from __future__ import annotations

from git_ckpt.constants import VERSION as __version__
from git_ckpt.errors import GitCkptError

__all__ = ['GitCkptError', '__version__', 'prune', 'scratch_dir', 'setup']

_LAZY = {'setup': 'git_ckpt.hf', 'scratch_dir': 'git_ckpt.hf', 'prune': 'git_ckpt.pruning'}


def __getattr__(name: str):
    # The transformers integration and pruning load on first use only (PEP 562).
    if name in _LAZY:
        # __import__ with a fromlist returns the submodule; importlib itself
        # is not loaded yet at this point and would cost setup() ~0.5 ms.
        value = getattr(__import__(_LAZY[name], fromlist=[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
