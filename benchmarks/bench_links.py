"""Links and migrate: what they cost next to doing it by hand.

Rows:
- `git worktree add` with the post-checkout hook creating 3 links vs the same
  hook with no links configured (target <= 1.25x: links must not make new
  worktrees noticeably slower);
- `git ckpt migrate DIR` across filesystems (worktree on disk, root on
  /dev/shm) vs the seed's `cp -r` + `rm -rf`: informational, since migrate also
  fsyncs, reads every byte back to verify its checksum, and only then deletes;
- `git ckpt migrate DIR` on the same filesystem (a rename) vs `mv`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, compare, hermetic_env  # noqa: E402


def _run(cmd, cwd, env):
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)


def _repo(tmp: Path, name: str, env: dict, links: tuple[str, ...]) -> Path:
    repo = tmp / name
    _run(['git', 'init', '-q', os.fspath(repo)], tmp, env)
    _run(['git', 'commit', '-q', '--allow-empty', '-m', 'init'], repo, env)
    _run(['git', 'ckpt', 'init', *[a for rel in links for a in ('--link', rel)]], repo, env)
    return repo


def _worktree_rows(tmp: Path, env: dict, repeats: int) -> Row:
    linked = _repo(tmp, 'linked', env, ('.art', 'outputs', 'wandb'))
    plain = _repo(tmp, 'plain', env, ())

    def add(repo: Path):
        return lambda: _run(['git', 'worktree', 'add', '-q', os.fspath(repo) + '-wt'], repo, env)

    def reset():
        for repo in (linked, plain):
            if os.path.exists(os.fspath(repo) + '-wt'):
                _run(['git', 'worktree', 'remove', '--force', os.fspath(repo) + '-wt'], repo, env)
    subject, baseline = compare(add(linked), add(plain), repeats=repeats, setup=reset)
    return Row('worktree add: hook with 3 links vs no links', subject, baseline, target=1.25)


def _fill(path: Path, files: int, size: int) -> None:
    path.mkdir(parents=True)
    block = os.urandom(size)
    for i in range(files):
        (path / f'shard-{i:03}.bin').write_bytes(block)


def _migrate_row(tmp: Path, env: dict, root: Path, label: str, repeats: int, files: int, size: int,
                 baseline_cmd: list[str], note: str) -> Row:
    env = dict(env, GIT_CKPT_ROOT=os.fspath(root))
    repo = _repo(tmp, f'mig-{label}', env, ())
    scratch = Path(subprocess.run(['git', 'ckpt', 'path'], cwd=repo, env=env, check=True,
                                  capture_output=True, text=True).stdout.strip())
    manual = root / f'manual-{label}'

    def reset():
        for path in (repo / 'outputs', scratch / 'outputs', manual):
            if path.is_symlink():
                path.unlink()
            elif path.exists():
                shutil.rmtree(path)
        _run(['git', 'config', '--unset-all', 'ckpt.link'], repo, dict(env)) if _has_link(repo, env) else None
        _fill(repo / 'outputs', files, size)

    def subject():
        _run(['git', 'ckpt', 'migrate', 'outputs'], repo, env)

    def baseline():
        for cmd in baseline_cmd:
            _run([c.format(src=repo / 'outputs', dest=manual) for c in cmd.split()], repo, env)
    s, b = compare(subject, baseline, repeats=repeats, setup=reset)
    return Row(f'migrate {files} x {size >> 20} MiB ({label}) vs {note}', s, b)


def _has_link(repo: Path, env: dict) -> bool:
    return subprocess.run(['git', 'config', '--get-all', 'ckpt.link'], cwd=repo, env=env,
                          capture_output=True).returncode == 0


def rows(quick: bool) -> list[Row]:
    repeats = 3 if quick else 9
    files, size = (8, 4 << 20) if quick else (32, 8 << 20)
    out = []
    with tempfile.TemporaryDirectory() as tmp, \
            tempfile.TemporaryDirectory(prefix='bench-links-', dir='/dev/shm') as shm:
        env = hermetic_env(tmp)
        env['PATH'] = f'{os.path.dirname(sys.executable)}{os.pathsep}{env["PATH"]}'
        tmp = Path(tmp)
        out.append(_worktree_rows(tmp, env, repeats * 2))
        shm_root = Path(shm) / 'root'
        shm_root.mkdir(mode=0o700)
        out.append(_migrate_row(tmp, env, shm_root, 'across filesystems', repeats, files, size,
                                ['cp -r {src} {dest}', 'rm -rf {src}'], 'cp -r + rm -rf'))
        out.append(_migrate_row(tmp, env, Path(env['GIT_CKPT_ROOT']), 'same filesystem', repeats, files,
                                size, ['mv {src} {dest}'], 'mv'))
    return out
