"""setup() cost: `import git_ckpt; git_ckpt.setup()` against a bare interpreter.

setup() runs at the top of every training script (and every torchrun rank),
so it must stay a few git calls and no heavy imports: it must not load torch
or transformers (those it patches later, through an import hook).
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


def rows(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        env = hermetic_env(tmp)
        env['GIT_CKPT_QUIET'] = '1'
        env.pop('GIT_CKPT_DIR', None)
        repo = os.path.join(tmp, 'proj')
        subprocess.run(['git', 'init', '-q', repo], check=True, env=env)
        # Also creates the scratch dir, so the timed runs measure the steady state.
        subprocess.run([sys.executable, '-c', CHECK], check=True, env=env, cwd=repo)
        subject, baseline = compare([sys.executable, '-c', SETUP], [sys.executable, '-c', 'pass'],
                                    repeats=5 if quick else 15, env=env, cwd=repo)
        with_env = dict(env, GIT_CKPT_DIR=os.path.join(tmp, 'job'))
        subprocess.run([sys.executable, '-c', CHECK], check=True, env=with_env, cwd=tmp)
        env_subject, env_baseline = compare([sys.executable, '-c', SETUP], [sys.executable, '-c', 'pass'],
                                            repeats=5 if quick else 15, env=with_env, cwd=tmp)
    return [
        Row('setup() in a worktree', subject, baseline, target=3.0,
            note='vs python -c pass; no torch/transformers imported'),
        Row('setup() with GIT_CKPT_DIR', env_subject, env_baseline, target=3.0,
            note='no git calls; vs python -c pass'),
    ]
