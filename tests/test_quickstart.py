"""examples/quickstart.sh runs end to end, exits 0 and cleans up after itself."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from conftest import BIN_DIR, run

SCRIPT = Path(__file__).resolve().parent.parent / 'examples' / 'quickstart.sh'


def run_quickstart(tmp_path: Path, path: str, **env) -> str:
    tmpdir = tmp_path / 'tmp'
    tmpdir.mkdir()
    proc = run(['bash', SCRIPT], cwd=tmp_path,
               env={**os.environ, 'PATH': path, 'TMPDIR': os.fspath(tmpdir), **env})
    assert 'Traceback' not in proc.stderr
    assert list(tmpdir.iterdir()) == []  # the sandbox is gone
    return proc.stdout


def check_output(out: str) -> None:
    steps = re.findall(r'^== (\d+)\. ', out, re.M)
    assert steps == [str(i) for i in range(1, len(steps) + 1)] and len(steps) >= 5
    assert '$ git ckpt init --root ' in out
    assert 'hook post-checkout: installed' in out
    mapped = dict(re.findall(r'^(proj|exp1|exp2) +-> (\S+)$', out, re.M))
    assert set(mapped) == {'proj', 'exp1', 'exp2'} and len(set(mapped.values())) == 3
    assert f'after a branch switch exp1 still maps to: {mapped["exp1"]}' in out
    assert 'scratch dir for exp1' in out  # the hook, on `git worktree add`
    last_step = out.rsplit('\n== ', 1)[1]  # ends with a remove that archives (a rename here)
    assert '$ git ckpt remove --archive ../exp1' in last_step
    assert '(rename, ' in last_step and '.git-ckpt-archive.json' in last_step
    try:
        import transformers  # noqa: F401
    except ImportError:
        assert 'training skipped' in out
        return
    # Two worktrees trained at once, each into its own scratch dir, linked back.
    for wt in ('exp1', 'exp2'):
        assert re.search(rf'^l.* out -> {re.escape(mapped[wt])}/out$', out, re.M)
    assert '"start_step": 6' in out  # the resume continued from the scratch checkpoint
    # The script itself fails if the guard lets the forced checkpoint through.
    assert '$ git ckpt status' in out and '$ git commit -q -m oops' in out
    assert 'removed worktree' in out and 'archived' in out


def test_quickstart_with_git_ckpt_on_path(tmp_path):
    check_output(run_quickstart(tmp_path, f'{BIN_DIR}{os.pathsep}/usr/bin:/bin'))


def test_quickstart_with_python_m_only(tmp_path):
    # No console script on PATH: the script uses `python -m git_ckpt`.
    out = run_quickstart(tmp_path, '/usr/bin:/bin', PYTHON=sys.executable)
    check_output(out)


def test_quickstart_without_git_ckpt_says_how_to_install(tmp_path):
    proc = run(['bash', SCRIPT], cwd=tmp_path, check=False,
               env={**os.environ, 'PATH': '/usr/bin:/bin', 'QUICKSTART_INSTALL': '0',
                    'PYTHON': os.fspath(tmp_path / 'no-such-python')})
    assert proc.returncode == 2
    assert 'pip install' in proc.stderr and 'Traceback' not in proc.stderr
