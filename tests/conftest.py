"""Shared fixtures: a hermetic environment and real git repositories.

Every test gets a temp HOME, its own global git config (no system config) and
a temp scratch root, so nothing touches the real home or a real /scratch.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _pin_the_local_date() -> None:
    """Archive names carry the local date, and tests name the archives they expect. A suite
    that runs across midnight saw two dates (CI did, at 00:00 UTC on 2026-11-29). A fixed-offset
    zone that puts the start of the run at local noon keeps one date for twelve hours, here and in
    every git-ckpt the tests start (they inherit TZ)."""
    west_of_utc = time.gmtime().tm_hour - 12          # POSIX TZ: local = UTC - offset
    os.environ['TZ'] = f'CKPTTEST{west_of_utc:+d}'
    time.tzset()


_pin_the_local_date()

BIN_DIR = Path(sys.executable).parent
UNPRIVILEGED_USER = 'ckpt-test-user'


def run(cmd, cwd=None, check=True, env=None, input=None, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [os.fspath(c) for c in cmd], cwd=cwd, env=env, input=input,
        capture_output=True, text=True, **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}')
    return proc


def git(*args, cwd=None, check=True, **kwargs) -> subprocess.CompletedProcess:
    return run(['git', *args], cwd=cwd, check=check, **kwargs)


def ckpt(*args, cwd=None, check=True, **kwargs) -> subprocess.CompletedProcess:
    """`git ckpt ...` exactly as a user types it (git finds git-ckpt on PATH)."""
    return run(['git', 'ckpt', *args], cwd=cwd, check=check, **kwargs)


@pytest.fixture
def hermetic(tmp_path, monkeypatch):
    """Isolated HOME, git config and scratch root; returns a namespace of paths."""
    home = tmp_path / 'home'
    home.mkdir()
    root = tmp_path / 'scratch'
    root.mkdir(mode=0o700)
    gitconfig = tmp_path / 'gitconfig'
    gitconfig.write_text(
        '[user]\n\tname = Test\n\temail = test@example.invalid\n'
        '[init]\n\tdefaultBranch = main\n'
        '[advice]\n\tdetachedHead = false\n'
        '[protocol "file"]\n\tallow = always\n'
    )
    for name in ('GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_CKPT_DIR', 'SCRATCH',
                 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME', 'GIT_CKPT_QUIET', 'HF_HOME', 'MANPATH'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HOME', os.fspath(home))
    monkeypatch.setenv('GIT_CONFIG_GLOBAL', os.fspath(gitconfig))
    monkeypatch.setenv('GIT_CONFIG_NOSYSTEM', '1')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    monkeypatch.setenv('PATH', f'{BIN_DIR}{os.pathsep}{os.environ["PATH"]}')
    monkeypatch.setenv('NO_COLOR', '1')

    class Env:
        pass
    env = Env()
    env.tmp = tmp_path
    env.home = home
    env.root = root
    env.gitconfig = gitconfig
    return env


def make_repo(path: Path, *, object_format: str | None = None) -> Path:
    args = ['init', '-q']
    if object_format:
        args.append(f'--object-format={object_format}')
    path.parent.mkdir(parents=True, exist_ok=True)
    git(*args, path)
    (path / 'README').write_text('hello\n')
    git('add', 'README', cwd=path)
    git('commit', '-q', '-m', 'init', cwd=path)
    return path


@pytest.fixture
def repo(hermetic) -> Path:
    """A real repository with one commit, at <tmp>/projects/proj."""
    return make_repo(hermetic.tmp / 'projects' / 'proj')


@pytest.fixture
def inited_repo(repo) -> Path:
    """`repo` after `git ckpt init`."""
    ckpt('init', cwd=repo)
    return repo


def scratch_path(cwd: Path) -> Path:
    return Path(ckpt('path', '--no-create', cwd=cwd).stdout.strip())


@pytest.fixture
def unprivileged_user():
    """A second, unprivileged user (root ignores permission bits, so ownership
    and permission tests need someone else).  Created when running as root."""
    if os.geteuid() != 0:
        pytest.skip('creating a second user needs root; run as root (CI does)')
    if shutil.which('useradd') is None:
        pytest.skip('useradd not available')
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        run(['useradd', '--no-create-home', '--shell', '/bin/sh', UNPRIVILEGED_USER])
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return entry


# --- core (issue 2) helpers ---------------------------------------------------

def assert_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """A user error: non-zero exit, exactly one stderr line, no traceback,
    naming each of `needles`.  Returns the line."""
    assert proc.returncode != 0, f'expected failure, got 0\nstdout:\n{proc.stdout}'
    assert 'Traceback' not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f'expected one stderr line, got:\n{proc.stderr}'
    assert lines[0].startswith('git-ckpt: error: '), lines[0]
    for needle in needles:
        assert needle in lines[0], f'{needle!r} not in {lines[0]!r}'
    return lines[0]


def add_worktree(repo: Path, path: Path, *args: str) -> Path:
    """`git worktree add` (hooks fire as for a user); returns the path."""
    git('worktree', 'add', '-q', *args, path, cwd=repo)
    return path


def chown_tree(path: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)


class AsUser:
    """Run Python (stdlib-only git_ckpt code paths, e.g. `-m git_ckpt path`)
    as the unprivileged user.  `sandbox` is a root-owned 0755 dir it can
    reach (pytest's tmp dirs are 0700); `home` is its own."""

    def __init__(self, entry, python: str, sandbox: Path) -> None:
        self.entry = entry
        self.python = python
        self.sandbox = sandbox
        self.home = sandbox / 'home'
        self.home.mkdir()
        os.chown(self.home, entry.pw_uid, entry.pw_gid)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(('GIT_CKPT', 'GIT_CONFIG'))}
        env.update(HOME=os.fspath(self.home), PATH='/usr/sbin:/usr/bin:/sbin:/bin', GIT_CONFIG_NOSYSTEM='1',
                   PYTHONPATH=os.fspath(Path(__file__).resolve().parent.parent), USER=self.entry.pw_name)
        env.update(extra)
        return env

    def run(self, *args, cwd=None, check=False, **env) -> subprocess.CompletedProcess:
        return run(['runuser', '-u', self.entry.pw_name, '--', self.python, *args],
                   cwd=cwd, check=check, env=self.env(**env))

    def own(self, path: Path) -> Path:
        chown_tree(path, self.entry.pw_uid, self.entry.pw_gid)
        return path


@pytest.fixture
def as_unprivileged(unprivileged_user):
    import tempfile
    sandbox = Path(tempfile.mkdtemp(prefix='git-ckpt-test-'))
    sandbox.chmod(0o755)
    try:
        src = Path(__file__).resolve().parent.parent
        for python in (sys.executable, shutil.which('python3', path='/usr/bin:/bin')):
            if not python:
                continue
            probe = run(['runuser', '-u', UNPRIVILEGED_USER, '--', python, '-c', 'import git_ckpt.worktree'],
                        check=False, env={**os.environ, 'PYTHONPATH': os.fspath(src)})
            if probe.returncode == 0:
                yield AsUser(unprivileged_user, python, sandbox)
                break
        else:
            pytest.skip('no Python the unprivileged user can run git_ckpt with')
    finally:
        shutil.rmtree(sandbox, ignore_errors=True)


# --- inventory (issue 4) helpers ----------------------------------------------

HOUR_AGO = 3600.0


def make_checkpoint(run_dir: Path, name: str, *, files: dict[str, bytes] | None = None,
                    state: dict | str | None = 'default', age: float = HOUR_AGO) -> Path:
    """A real HF-style checkpoint dir.  `state`: a dict for trainer_state.json,
    a str written verbatim (corrupt), None for no trainer_state.json.  Every
    mtime is set `age` seconds in the past (older than the prune grace window)."""
    import json as _json
    import time as _time
    path = run_dir / name
    path.mkdir(parents=True)
    for fname, data in (files if files is not None else {'model.safetensors': b'w' * 20000}).items():
        (path / fname).parent.mkdir(parents=True, exist_ok=True)
        (path / fname).write_bytes(data)
    if state == 'default':
        state = {'global_step': 0, 'best_model_checkpoint': None}
    if isinstance(state, dict):
        (path / 'trainer_state.json').write_text(_json.dumps(state))
    elif isinstance(state, str):
        (path / 'trainer_state.json').write_text(state)
    set_age(path, age)
    return path


def set_age(path: Path, age: float) -> None:
    """Set the mtime of path and everything under it to `age` seconds ago."""
    import time as _time
    when = _time.time() - age
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
    os.utime(path, (when, when), follow_symlinks=False)


@pytest.fixture
def managed_scratch(hermetic) -> Path:
    """A managed scratch dir laid out like git-ckpt's (<root>/<project>/<worktree>,
    both manifests written by git-ckpt's own code), without a repository."""
    from git_ckpt import constants as C
    from git_ckpt.scratch import ensure_private_dir, write_json_atomic
    scratch_dir = ensure_private_dir(hermetic.root, Path('proj-0123abcd') / 'exp-89abcdef')
    write_json_atomic(scratch_dir.parent / C.REPO_MANIFEST_NAME, {'schema': C.MANIFEST_SCHEMA, 'repo': '/nowhere'})
    write_json_atomic(scratch_dir / C.MANIFEST_NAME, {
        'schema': C.MANIFEST_SCHEMA, 'worktree_id': scratch_dir.name, 'worktree': '/nowhere/exp'})
    return scratch_dir


def tree_digest(path: Path) -> dict[str, str]:
    """relative path -> sha256 (files) / 'dir' / 'link:<target>' of everything under path."""
    import hashlib
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                out[rel] = f'link:{os.readlink(full)}'
            elif os.path.isdir(full):
                out[rel] = 'dir'
            else:
                with open(full, 'rb') as f:
                    out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture
def tmpfs_mount(tmp_path):
    """Factory: mount a tmpfs of `size` (e.g. '1m') at a fresh dir, unmounted in
    teardown.  A real second filesystem for ENOSPC, read-only and free-space
    cases; skips when mounting is not permitted."""
    mounted: list[Path] = []

    def mount(name: str = 'tmpfs', size: str = '1m', options: str = '') -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = f'size={size},mode=0700' + (f',{options}' if options else '')
        proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', opts, 'tmpfs', where],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f'cannot mount a tmpfs (needs root): {proc.stderr.strip()}')
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(['umount', '-l', where], capture_output=True)


@pytest.fixture
def shm_dir(request):
    """A fresh dir on /dev/shm (tmpfs: a different filesystem from tmp_path),
    removed in teardown."""
    import tempfile
    if not os.path.isdir('/dev/shm'):
        pytest.skip('/dev/shm is not available')
    path = Path(tempfile.mkdtemp(prefix='git-ckpt-test-', dir='/dev/shm'))
    os.chmod(path, 0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- fault suite (issue 8): trial figures summed across xdist workers ----------

def pytest_configure(config):
    if not hasattr(config, 'workerinput'):  # the controller, before any worker starts
        from faults import figures
        figures.start_session()


def pytest_terminal_summary(terminalreporter):
    if not hasattr(terminalreporter.config, 'workerinput'):
        from faults import figures
        figures.finish_session(terminalreporter)


# --- parallel workers (issue 4 speed) ---------------------------------------------

@pytest.fixture
def forks(monkeypatch) -> list[int]:
    """Two free CPUs as far as git_ckpt.workers knows; returns the pids it forked."""
    from git_ckpt import workers
    monkeypatch.setattr(workers, 'cpus', lambda: 2)
    monkeypatch.setattr(workers, 'idle_cpus', lambda: 2.0)
    forked = []
    real_fork = os.fork

    def counting_fork():
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, 'fork', counting_fork)
    return forked


def comparable_status_json(text: str) -> dict:
    """`git ckpt status --json` without the fields that move between two runs."""
    doc = json.loads(text)
    doc.pop('free_bytes')  # the filesystem moves under us
    for row in doc['rows']:
        if row['latest']:
            row['latest'].pop('age_seconds')
    return doc
