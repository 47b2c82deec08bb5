"""The commit guard on a repository with 5,000 staged files plus a checkpoint dir.

Rows:
- the native hook, run as git runs it (the installed .git/hooks/pre-commit
  shim, in the environment `git commit` gives hooks, read by a probe hook),
  vs bare `python -c pass`: the guard's whole cost over starting Python at
  all (target <= 2.5x);
- the native hook vs pre-commit-hooks' `check-added-large-files --maxkb=500`
  given the same 5,000+ filenames (target: at least 2x faster, i.e. <= 0.5x),
  although the guard also checks names, symlinks and the scratch root;
- the guard given those filenames (as the pre-commit framework calls it) vs the
  same baseline;
- informational: one `git cat-file --batch-check` over the staged blobs, alone:
  what reading their sizes cost before the guard read loose objects' headers
  itself (it still uses cat-file for objects that are not stored loose);
- informational floors, each vs the same `python -c pass`: the hook's shim
  starts `python -S` (no site-packages scan: what site costs depends on the
  venv's .pth files, so the hook is also compared with `python -S -c pass`);
  `git diff --cached` alone; and `python -S` plus one stat per staged loose
  object, the least the size limit costs in Python (git_ckpt.loose_objects).

The package's bytecode is compiled first (`python -m compileall git_ckpt`), as
pip does when it installs a wheel: this environment sets
PYTHONDONTWRITEBYTECODE=1, so an editable checkout without __pycache__ would
otherwise recompile every git_ckpt module on every commit, which no
installed copy does.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import git_ckpt
from common import Row, compare, hermetic_env

N_FILES = 5000
CHECKPOINT_FILES = ('config.json', 'model.safetensors', 'optimizer.pt', 'scheduler.pt',
                    'rng_state.pth', 'trainer_state.json', 'training_args.bin')


def _git(env, cwd, *args):
    subprocess.run(('git', *args), cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_repo(tmp: str, env: dict[str, str]) -> tuple[str, list[str]]:
    repo = os.path.join(tmp, 'proj')
    os.makedirs(repo)
    _git(env, repo, 'init', '-q')
    with open(os.path.join(repo, 'README'), 'w') as f:
        f.write('bench\n')
    _git(env, repo, 'add', 'README')
    _git(env, repo, 'commit', '-q', '-m', 'init')
    subprocess.run((sys.executable, '-m', 'git_ckpt', 'init'), cwd=repo, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    files = []
    for i in range(N_FILES):
        rel = f'src/pkg{i % 50}/module_{i}.py'
        os.makedirs(os.path.join(repo, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(repo, rel), 'w') as f:
            f.write(f'VALUE = {i}\n' * (1 + i % 20))
        files.append(rel)
    for name in CHECKPOINT_FILES:
        rel = f'out/checkpoint-500/{name}'
        os.makedirs(os.path.join(repo, 'out/checkpoint-500'), exist_ok=True)
        with open(os.path.join(repo, rel), 'wb') as f:
            f.write(os.urandom(4096))
        files.append(rel)
    _git(env, repo, 'add', '-A', '-f')
    return repo, files


def env_git_gives_hooks(repo: str, env: dict[str, str]) -> dict[str, str]:
    """The environment `git commit` runs its pre-commit hook in (GIT_PREFIX,
    GIT_INDEX_FILE, GIT_EXEC_PATH, the author...), read by a probe hook that
    then refuses the commit: the guard behaves as under git (it reads the
    top from .git instead of running rev-parse when GIT_PREFIX is set)."""
    probe_dir = os.path.join(os.path.dirname(repo), 'probe-hooks')
    os.makedirs(probe_dir, exist_ok=True)
    dump = os.path.join(probe_dir, 'env')
    probe = os.path.join(probe_dir, 'pre-commit')
    with open(probe, 'w') as f:
        f.write(f'#!/bin/sh\nenv -0 > "{dump}"\nexit 1\n')
    os.chmod(probe, 0o755)
    subprocess.run(('git', '-c', f'core.hooksPath={probe_dir}', 'commit', '-q', '-m', 'probe'), cwd=repo,
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(dump, 'rb') as f:
        pairs = [item.decode().partition('=') for item in f.read().split(b'\0') if item]
    hook_env = {key: value for key, _, value in pairs}
    hook_env.pop('GIT_CONFIG_PARAMETERS', None)  # the probe's own -c core.hooksPath
    assert 'GIT_PREFIX' in hook_env and 'GIT_INDEX_FILE' in hook_env, sorted(hook_env)
    return hook_env


def _runner(cmd, repo, env, expect):
    def run():
        proc = subprocess.run(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        assert proc.returncode == expect, (cmd[:3], proc.returncode)
    return run


def compile_bytecode() -> None:
    """What `pip install` of a wheel does: write .pyc files for the package."""
    subprocess.run((sys.executable, '-m', 'compileall', '-q', os.path.dirname(git_ckpt.__file__)),
                   check=True, stdout=subprocess.DEVNULL)


def rows(quick: bool) -> list[Row]:
    repeats = 5 if quick else 21
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix='bench-guard-') as tmp:
        env = hermetic_env(tmp)
        env.pop('GIT_CKPT_QUIET', None)
        repo, files = make_repo(tmp, env)
        env = env_git_gives_hooks(repo, env)
        hook = os.path.join(repo, '.git', 'hooks', 'pre-commit')
        native = _runner([hook], repo, env, expect=1)            # blocked: the checkpoint dir
        framework = _runner([sys.executable, '-m', 'git_ckpt', '_hook', 'pre-commit', *files],
                            repo, env, expect=1)
        bare = _runner([sys.executable, '-c', 'pass'], repo, env, expect=0)
        large_files = _runner([sys.executable, '-m', 'pre_commit_hooks.check_added_large_files',
                               '--maxkb=500', *files], repo, env, expect=0)
        oids = subprocess.run(('git', 'ls-files', '-s'), cwd=repo, env=env, check=True,
                              capture_output=True, text=True).stdout
        oids = ''.join(line.split()[1] + '\n' for line in oids.splitlines())

        def cat_file():
            subprocess.run(('git', 'cat-file', '--batch-check'), cwd=repo, env=env, input=oids,
                           text=True, check=True, stdout=subprocess.DEVNULL)
        note = f'{N_FILES} staged files + {len(CHECKPOINT_FILES)} in out/checkpoint-500'
        out = []
        s, b = compare(native, bare, repeats=repeats)
        out.append(Row('guard: native hook vs python -c pass', s, b, target=2.5, note=note))
        s, b = compare(native, large_files, repeats=repeats)
        out.append(Row('guard: native hook vs check-added-large-files --maxkb=500', s, b,
                       target=0.5, note='same files; target = at least 2x faster'))
        s, b = compare(framework, large_files, repeats=repeats)
        out.append(Row('guard: given the filenames (pre-commit framework) vs check-added-large-files',
                       s, b, target=0.5, note='same filenames on both command lines'))
        s, b = compare(cat_file, bare, repeats=repeats)
        out.append(Row('git cat-file --batch-check of the staged blobs alone vs python -c pass',
                       s, b, note='loose objects, as after git add; what the guard no longer spawns; informational'))
        bare_s = _runner([sys.executable, '-S', '-c', 'pass'], repo, env, expect=0)
        s, b = compare(native, bare_s, repeats=repeats)
        out.append(Row('guard: native hook vs python -S -c pass', s, b,
                       note='the shim runs python -S; informational'))
        s, b = compare(bare_s, bare, repeats=repeats)
        out.append(Row('floor: python -S -c pass vs python -c pass', s, b,
                       note="what site and this venv's .pth files cost; informational"))
        diff = _runner(['git', 'diff', '--cached', '--raw', '-z', '--no-renames', '--no-abbrev'],
                       repo, env, expect=0)
        s, b = compare(diff, bare, repeats=repeats)
        out.append(Row('floor: git diff --cached --raw -z alone vs python -c pass', s, b, note='informational'))
        oids_file = os.path.join(tmp, 'oids')
        with open(oids_file, 'w') as f:
            f.write(oids)
        stats = _runner([sys.executable, '-S', '-c', STAT_EACH_LOOSE_OBJECT,
                         os.path.join(repo, '.git', 'objects'), oids_file], repo, env, expect=0)
        s, b = compare(stats, bare, repeats=repeats)
        out.append(Row('floor: python -S + one stat per staged loose object vs python -c pass', s, b,
                       note=f'{N_FILES + len(CHECKPOINT_FILES)} stats; informational'))
        return out


# The least the size limit can cost in Python: one stat of each staged blob's
# loose object file (by a dir fd, as git_ckpt.loose_objects does).
STAT_EACH_LOOSE_OBJECT = """
import os, sys
fds = {}
for oid in open(sys.argv[2]).read().split():
    fd = fds.get(oid[:2])
    if fd is None:
        fd = fds[oid[:2]] = os.open(os.path.join(sys.argv[1], oid[:2]), os.O_RDONLY)
    os.stat(oid[2:], dir_fd=fd).st_size
"""
