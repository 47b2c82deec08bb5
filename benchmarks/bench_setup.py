"""setup() cost: `import git_ckpt; git_ckpt.setup()` against a bare interpreter.

setup() runs at the top of every training script (and every torchrun rank),
so it must stay two git calls and no heavy imports: it must not load torch
or transformers (those it patches later, through an import hook).

The rows with a target run with a bytecode cache (PYTHONPYCACHEPREFIX in a
temp dir, warmed first), which is what every installed package has: pip
byte-compiles at install, and any other install writes __pycache__ on first
import.  With PYTHONDONTWRITEBYTECODE=1 and no __pycache__ (an editable
install in an environment that sets it, like this project's dev containers)
Python recompiles git_ckpt's sources on every start; the last row shows
that case as it is in the environment the benchmark runs in.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from common import Row, compare, hermetic_env

SETUP = 'import git_ckpt; git_ckpt.setup()'
CHECK = (SETUP + '\nimport sys\n'
         'heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))\n'
         'assert not heavy, f"setup() imported {heavy}"\n')


def _cached(env: dict[str, str], tmp: str) -> dict[str, str]:
    """env with a bytecode cache of its own (warmed by the first runs)."""
    env = dict(env, PYTHONPYCACHEPREFIX=os.path.join(tmp, 'pycache'))
    env.pop('PYTHONDONTWRITEBYTECODE', None)
    return env


def _measure(env: dict[str, str], cwd: str, repeats: int) -> tuple[float, float]:
    # The first runs create the scratch dir and warm the bytecode cache, so the
    # timed runs measure the steady state; CHECK also asserts no torch/transformers.
    subprocess.run([sys.executable, '-c', CHECK], check=True, env=env, cwd=cwd)
    subprocess.run([sys.executable, '-c', 'pass'], check=True, env=env, cwd=cwd)
    return compare([sys.executable, '-c', SETUP], [sys.executable, '-c', 'pass'],
                   repeats=repeats, env=env, cwd=cwd)


def _inherited_label(env: dict[str, str]) -> str:
    import git_ckpt
    cached = os.path.isdir(os.path.join(os.path.dirname(git_ckpt.__file__), '__pycache__'))
    if env.get('PYTHONDONTWRITEBYTECODE') and not cached and not env.get('PYTHONPYCACHEPREFIX'):
        return 'PYTHONDONTWRITEBYTECODE=1, no __pycache__: git_ckpt compiled on every run'
    return 'bytecode as the environment has it'


def rows(quick: bool) -> list[Row]:
    repeats = 5 if quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        env = hermetic_env(tmp)
        env['GIT_CKPT_QUIET'] = '1'
        env.pop('GIT_CKPT_DIR', None)
        repo = os.path.join(tmp, 'proj')
        subprocess.run(['git', 'init', '-q', repo], check=True, env=env)
        subject, baseline = _measure(_cached(env, tmp), repo, repeats)
        with_env = _cached(dict(env, GIT_CKPT_DIR=os.path.join(tmp, 'job')), tmp)
        env_subject, env_baseline = _measure(with_env, tmp, repeats)
        raw_subject, raw_baseline = _measure(env, repo, repeats)
        label = _inherited_label(env)
    return [
        Row('setup() in a worktree', subject, baseline, target=3.0,
            note='vs python -c pass; no torch/transformers imported'),
        Row('setup() with GIT_CKPT_DIR', env_subject, env_baseline, target=3.0,
            note='no git calls; vs python -c pass'),
        Row('setup() in a worktree', raw_subject, raw_baseline, note=label),
    ]
