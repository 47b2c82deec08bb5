"""The command line itself (issue 2, sections 1, 7 and 8): bad input is one
stderr line naming the problem and the fix, help works, the man page is
found after a plain `pip install`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_error, ckpt, git, make_repo, run
from git_ckpt import constants as C

REPO_ROOT = Path(__file__).resolve().parent.parent


def both_entry_points(*args: str, cwd: Path, env=None) -> list[subprocess.CompletedProcess]:
    """The same call as `git ckpt ...` and as `python -m git_ckpt ...`."""
    return [
        run(['git', 'ckpt', *args], cwd=cwd, check=False, env=env),
        run([sys.executable, '-m', 'git_ckpt', *args], cwd=cwd, check=False, env=env),
    ]


# -- section 8: bad input ---------------------------------------------------------------

@pytest.mark.parametrize('command', [('path',), ('path', '--no-create'), ('init',), ('uninstall',)])
def test_outside_a_repository(hermetic, command):
    for proc in both_entry_points(*command, cwd=hermetic.tmp):
        assert_error(proc, 'not inside a git repository', 'GIT_CKPT_DIR')


@pytest.mark.parametrize('command', [('path',), ('init',)])
def test_bare_repository(hermetic, command):
    bare = hermetic.tmp / 'proj.git'
    git('init', '-q', '--bare', bare)
    for proc in both_entry_points(*command, cwd=bare):
        assert_error(proc, 'bare repository', 'git worktree add')


def test_inside_the_git_dir(repo):
    assert_error(ckpt('path', cwd=repo / '.git', check=False), 'inside a git dir')


def test_root_missing(repo, hermetic, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hermetic.tmp / 'missing'))
    for command in (('path',), ('init',)):
        for proc in both_entry_points(*command, cwd=repo):
            assert_error(proc, 'does not exist', 'mkdir -p')


def test_root_is_a_file(repo, hermetic, monkeypatch):
    (hermetic.tmp / 'file').write_text('')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hermetic.tmp / 'file'))
    assert_error(ckpt('path', cwd=repo, check=False), 'not a directory')


def test_root_owned_by_another_user(repo, hermetic, monkeypatch, unprivileged_user):
    theirs = hermetic.tmp / 'theirs'
    theirs.mkdir(mode=0o777)
    os.chown(theirs, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(theirs))
    for proc in both_entry_points('path', cwd=repo):
        assert_error(proc, 'owned by ckpt-test-user', 'use a directory of your own')
    assert list(theirs.iterdir()) == []


def test_root_symlink_to_another_users_dir(repo, hermetic, monkeypatch, unprivileged_user):
    theirs = hermetic.tmp / 'theirs'
    theirs.mkdir(mode=0o777)
    os.chown(theirs, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    (hermetic.tmp / 'link').symlink_to(theirs)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hermetic.tmp / 'link'))
    assert_error(ckpt('path', cwd=repo, check=False), 'owned by ckpt-test-user')
    assert_error(ckpt('init', '--root', hermetic.tmp / 'link', cwd=repo, check=False), 'owned by')
    assert list(theirs.iterdir()) == []


def test_root_symlink_to_our_own_dir_is_fine(repo, hermetic, monkeypatch):
    # Clusters often link /scratch elsewhere; what counts is the target.
    (hermetic.tmp / 'link').symlink_to(hermetic.root)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hermetic.tmp / 'link'))
    assert Path(ckpt('path', cwd=repo).stdout.strip()).parent.parent == hermetic.root


def test_world_writable_root_without_sticky_bit(repo, hermetic):
    hermetic.root.chmod(0o777)
    assert_error(ckpt('path', cwd=repo, check=False), 'world-writable', 'chmod')
    hermetic.root.chmod(0o1777)
    assert ckpt('path', cwd=repo).returncode == 0


def test_root_not_writable(as_unprivileged):
    """As a real second user: root ignores permission bits."""
    sandbox = as_unprivileged.sandbox
    repo = make_repo(sandbox / 'proj')
    root = sandbox / 'root'
    root.mkdir()
    as_unprivileged.own(repo)
    as_unprivileged.own(root)
    root.chmod(0o500)
    proc = as_unprivileged.run('-m', 'git_ckpt', 'path', cwd=repo, GIT_CKPT_ROOT=os.fspath(root))
    assert_error(proc, 'not writable by you', 'permissions')
    # The same user with a writable root: works (the refusal was the permission).
    root.chmod(0o700)
    proc = as_unprivileged.run('-m', 'git_ckpt', 'path', cwd=repo, GIT_CKPT_ROOT=os.fspath(root))
    assert proc.returncode == 0, proc.stderr
    created = Path(proc.stdout.strip())
    assert created.is_dir() and created.stat().st_uid == as_unprivileged.entry.pw_uid


def test_scratch_dir_planted_by_root_is_refused_for_the_user(as_unprivileged):
    sandbox = as_unprivileged.sandbox
    repo = as_unprivileged.own(make_repo(sandbox / 'proj'))
    root = sandbox / 'root'
    root.mkdir()
    root.chmod(0o1777)  # a site-wide sticky scratch, like /tmp
    env = {'GIT_CKPT_ROOT': os.fspath(root)}
    planned = Path(as_unprivileged.run('-m', 'git_ckpt', 'path', '--no-create', cwd=repo, **env).stdout.strip())
    planned.parent.mkdir()  # "someone else" (root here) pre-creates the project dir
    planned.parent.chmod(0o777)
    proc = as_unprivileged.run('-m', 'git_ckpt', 'path', cwd=repo, **env)
    assert_error(proc, 'owned by root', 'pre-created')


@pytest.mark.parametrize('name', ['a/b', '..', '', '.hidden', 'x\ny'])
def test_invalid_name(repo, name):
    for proc in both_entry_points('init', '--name', name, cwd=repo):
        assert_error(proc, 'invalid project name', '--name')


def test_git_ckpt_dir_pointing_at_a_file(repo, hermetic):
    (hermetic.tmp / 'afile').write_text('')
    env = {**os.environ, 'GIT_CKPT_DIR': os.fspath(hermetic.tmp / 'afile')}
    for proc in both_entry_points('path', cwd=repo, env=env):
        assert_error(proc, 'GIT_CKPT_DIR', 'not a directory', 'unset GIT_CKPT_DIR')


@pytest.mark.parametrize('args,needle', [
    (('path', '--bogus'), "No such option '--bogus'"),
    (('--bogus',), "No such option '--bogus'"),
    (('path', '--root'), "requires an argument"),
    (('nosuchcommand',), "No such command 'nosuchcommand'"),
    (('init', 'extra'), 'unexpected extra argument'),
])
def test_usage_errors_are_one_line(repo, args, needle):
    for proc in both_entry_points(*args, cwd=repo):
        line = assert_error(proc, needle, 'git ckpt -h')
        assert '.;' not in line
        assert proc.returncode == 2


def test_unexpected_os_error_is_one_line(inited_repo, hermetic, monkeypatch):
    # The admin dir cannot take the id file: no traceback, one line.
    exp1 = hermetic.tmp / 'exp1'
    git('worktree', 'add', '-q', '--no-checkout', exp1, cwd=inited_repo)
    admin = inited_repo / '.git' / 'worktrees' / 'exp1'
    (admin / C.WORKTREE_ID_FILE).mkdir()  # a dir where a file should be
    assert_error(ckpt('path', cwd=exp1, check=False), os.fspath(admin / C.WORKTREE_ID_FILE))


# -- section 7: help -----------------------------------------------------------------------

def test_short_help(repo):
    for proc in both_entry_points('-h', cwd=repo):
        assert proc.returncode == 0 and proc.stderr == ''
        assert proc.stdout.startswith('Usage: git ckpt')
        for command in ('init', 'path', 'uninstall'):
            assert f'  {command} ' in proc.stdout


def test_bare_command_prints_help(hermetic):
    proc = ckpt(cwd=hermetic.tmp)
    assert proc.stdout.startswith('Usage: git ckpt') and proc.stderr == ''


def test_subcommand_help_and_version(repo):
    proc = ckpt('path', '-h', cwd=repo)
    assert '--no-create' in proc.stdout and '--root DIR' in proc.stdout
    assert ckpt('-V', cwd=repo).stdout.strip() == f'git-ckpt, version {C.VERSION}'


def test_committed_man_page_is_generated_from_the_cli():
    generated = run([sys.executable, '-m', 'git_ckpt.manpage']).stdout
    assert (REPO_ROOT / 'man' / 'git-ckpt.1').read_text() == generated
    for command in ('init', 'path', 'uninstall'):
        assert f'.B git ckpt {command}' in generated


@pytest.mark.slow
def test_man_page_is_found_after_a_plain_pip_install(hermetic):
    if shutil.which('man') is None:
        pytest.skip('man is not installed')
    venv = hermetic.tmp / 'fresh venv'
    run([sys.executable, '-m', 'venv', '--system-site-packages', venv])
    pip = [venv / 'bin' / 'python', '-m', 'pip', 'install', '-q']
    try:
        import hatchling  # noqa: F401
        pip += ['--no-deps', '--no-build-isolation']  # offline: everything is at hand
    except ImportError:
        pass  # a normal install: pip fetches the build backend
    src = hermetic.tmp / 'src'
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns('.git', '.venv', '__pycache__', '*.egg-info'))
    run([*pip, src], timeout=600)
    installed = venv / 'share' / 'man' / 'man1' / 'git-ckpt.1'
    assert installed.read_text() == (REPO_ROOT / 'man' / 'git-ckpt.1').read_text()
    packaged_hooks = list(venv.glob('lib/python*/site-packages/git_ckpt/hooks/post-checkout'))
    assert len(packaged_hooks) == 1  # a real (non-editable) install, hooks inside the wheel

    # A new user: only the venv's bin on PATH (not activated), MANPATH unset.
    env = {k: v for k, v in os.environ.items() if k not in ('MANPATH', 'VIRTUAL_ENV')}
    env.update(PATH=f'{venv / "bin"}{os.pathsep}/usr/bin:/bin', MANPAGER='cat', PAGER='cat',
               GIT_PAGER='cat', MANWIDTH='80')
    assert run(['man', '-w', 'git-ckpt'], env=env).stdout.strip() == os.fspath(installed)
    repo = make_repo(hermetic.tmp / 'proj')
    for args in (['help', 'ckpt'], ['ckpt', '--help']):
        proc = run(['git', *args], cwd=repo, env=env)
        assert 'GIT-CKPT(1)' in proc.stdout and 'git ckpt path' in proc.stdout
    # The installed (non-editable) copy carries the hook scripts.
    proc = run(['git', 'ckpt', 'init'], cwd=repo, env=env)
    hook = (repo / '.git' / 'hooks' / 'post-checkout').read_text()
    assert f"{C.HOOK_PYTHON_LINE}'{venv / 'bin' / 'python'}'" in hook
    assert proc.stderr == ''
    git('worktree', 'add', '-q', hermetic.tmp / 'exp1', cwd=repo, env=env)
    assert Path(run(['git', 'ckpt', 'path', '--no-create'], cwd=hermetic.tmp / 'exp1', env=env)
                .stdout.strip()).is_dir()


# -- a reader that goes away (`git ckpt status | head`) --------------------------------------

@pytest.mark.parametrize('args', [('status',), ('status', '--json'), ('doctor',), ('path',)],
                         ids=['status (click-free path)', 'status --json', 'doctor (click)', 'path'])
def test_a_closed_pipe_on_stdout_is_no_error(inited_repo, args):
    # The read end is closed before git-ckpt writes a byte: its first write
    # fails with EPIPE, deterministically (no race with a real `head`).
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    try:
        proc = subprocess.run(['git', 'ckpt', *args], cwd=inited_repo, stdout=write_fd,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write_fd)
    assert proc.stderr == '', proc.stderr
    # 141 (128 + SIGPIPE, as the shell reports it) from git-ckpt's own
    # handler on the click-free paths; click handles EPIPE itself with exit 1.
    assert proc.returncode == (1 if args[0] == 'doctor' else 141)
