"""Cost of the post-checkout hook and of `git ckpt path`.

Rows:
- a plain branch switch in a repo with our hook vs the same repo without it
  (target <= 1.2x: the sh shim must exit before starting Python), and, for
  scale, an empty `exit 0` hook vs none (git's own cost of running a hook);
- `git worktree add` with the hook (which creates the scratch dir) vs without;
- `git ckpt path` (and `git-ckpt path` without git's dispatch) vs `python -c pass`.
"""
from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Row, compare, hermetic_env, time_once


def _git(*args, cwd, env) -> None:
    subprocess.run(['git', *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _make_repo(path: Path, env: dict[str, str]) -> Path:
    """A small research repo: 300 files in 10 packages; the two branches
    differ in 30 of them, so a switch rewrites files as real switches do."""
    _git('init', '-q', path, cwd=path.parent, env=env)
    for pkg in range(10):
        (path / f'pkg{pkg}').mkdir()
        for i in range(30):
            (path / f'pkg{pkg}' / f'mod{i}.py').write_text(f'# module {pkg}.{i}\n' + 'x = 1\n' * 50)
    _git('add', '.', cwd=path, env=env)
    _git('commit', '-q', '-m', 'init', cwd=path, env=env)
    _git('switch', '-q', '-c', 'other', cwd=path, env=env)
    for pkg in range(10):
        for i in range(3):
            (path / f'pkg{pkg}' / f'mod{i}.py').write_text(f'# changed {pkg}.{i}\n' + 'y = 2\n' * 50)
    _git('commit', '-q', '-am', 'change', cwd=path, env=env)
    _git('switch', '-q', 'main', cwd=path, env=env)
    return path


def _switcher(repo: Path, env: dict[str, str]):
    branches = itertools.cycle(['other', 'main'])
    return lambda: _git('switch', '-q', next(branches), cwd=repo, env=env)


def _adder(repo: Path, env: dict[str, str]):
    counter = itertools.count()
    return lambda: _git('worktree', 'add', '-q', repo.parent / f'{repo.name}-wt{next(counter)}',
                        cwd=repo, env=env)


def compare_hook_toggled(action, hook: Path, repeats: int) -> tuple[float, float]:
    """Median seconds of `action` with `hook` in place and with it moved
    aside, interleaved, in the SAME repository (so only the hook differs)."""
    aside = hook.with_name(hook.name + '.bench-aside')
    with_hook, without = [], []
    try:
        for _ in range(repeats):
            with_hook.append(time_once(action))
            os.rename(hook, aside)
            without.append(time_once(action))
            os.rename(aside, hook)
    finally:
        if aside.exists():
            os.rename(aside, hook)
    return statistics.median(with_hook), statistics.median(without)


def rows(quick: bool) -> list[Row]:
    repeats = 11 if quick else 41
    out = []
    with tempfile.TemporaryDirectory(prefix='bench-hooks-') as tmp:
        env = hermetic_env(tmp)
        env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env["PATH"]}'
        env['GIT_CKPT_QUIET'] = '1'
        # An installed package has bytecode; a dev shell may forbid writing it
        # (PYTHONDONTWRITEBYTECODE), which would time compiling our modules.
        env.pop('PYTHONDONTWRITEBYTECODE', None)
        env['PYTHONPYCACHEPREFIX'] = os.path.join(tmp, 'pycache')
        env.pop('GIT_CKPT_DIR', None)
        repo = _make_repo(Path(tmp) / 'proj', env)
        subprocess.run(['git', 'ckpt', 'init'], cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        hook = repo / '.git' / 'hooks' / 'post-checkout'
        ours = hook.read_bytes()
        # Files written in the same second as the index are "racily clean" and
        # re-read by every switch until the index is rewritten: settle that,
        # then warm the caches.
        time.sleep(1.1)
        _git('status', '--porcelain', cwd=repo, env=env)
        switch = _switcher(repo, env)
        for _ in range(4):
            switch()

        s, b = compare_hook_toggled(switch, hook, repeats)
        out.append(Row('branch switch: with post-checkout hook vs none', s, b, target=1.2,
                       note='same repo, hook toggled'))
        hook.write_text('#!/bin/sh\nexit 0\n')
        s, b = compare_hook_toggled(switch, hook, repeats)
        out.append(Row('branch switch: an empty sh hook vs none', s, b,
                       note="floor: git's own cost of running any hook"))
        hook.write_bytes(ours)

        s, b = compare_hook_toggled(_adder(repo, env), hook, max(7, repeats // 3))
        out.append(Row('git worktree add: with hook (creates scratch dir) vs none', s, b,
                       note='one Python start'))

        python_pass = [sys.executable, '-c', 'pass']
        s, b = compare(['git', 'ckpt', 'path'], python_pass, repeats=repeats, cwd=repo, env=env)
        out.append(Row('git ckpt path vs python -c pass', s, b))
        git_ckpt = os.path.join(os.path.dirname(sys.executable), 'git-ckpt')
        s, b = compare([git_ckpt, 'path'], python_pass, repeats=repeats, cwd=repo, env=env)
        out.append(Row('git-ckpt path (no git dispatch) vs python -c pass', s, b))
        via_click = [sys.executable, '-c', 'from git_ckpt.main import main; raise SystemExit(main(["path"]))']
        s, b = compare(via_click, python_pass, repeats=repeats, cwd=repo, env=env)
        out.append(Row('path through the click CLI vs python -c pass', s, b,
                       note='what the click-free fast path saves'))
    return out


if __name__ == '__main__':
    for row in rows('--quick' in sys.argv):
        print(row.markdown())
