"""`git ckpt doctor`: each broken condition made for real, seen as a failure
(✗, exit 1), then fixed and seen as ✓."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ckpt, git, run, scratch_path


def doctor(cwd, env=None):
    """(exit code, human lines, json report) of one real doctor run each way."""
    human = ckpt('doctor', cwd=cwd, check=False, env=env)
    machine = ckpt('doctor', '--json', cwd=cwd, check=False, env=env)
    assert 'Traceback' not in human.stderr + machine.stderr
    assert machine.stdout.startswith('{'), machine
    assert human.returncode == machine.returncode, (human, machine)
    return human.returncode, human.stdout.splitlines(), json.loads(machine.stdout)


def find(report, check_id, subject=None):
    found = [c for c in report['checks'] if c['id'] == check_id
             and (subject is None or c['subject'] == subject)]
    assert found, (check_id, subject, [c['id'] for c in report['checks']])
    return found[0]


def line_for(lines, check):
    for line in lines:
        if check['message'] in line:
            return line
    raise AssertionError((check['message'], lines))


def expect(cwd, check_id, status, subject=None, env=None, needle=''):
    """Run doctor; assert the check's status, its line's mark, and the exit code."""
    rc, lines, report = doctor(cwd, env)
    check = find(report, check_id, subject)
    assert check['status'] == status, check
    mark = {'ok': '✓', 'warn': '!', 'fail': '✗', 'skip': '-'}[status]
    line = line_for(lines, check)
    assert line.startswith(mark + ' '), line
    if status == 'fail':
        assert rc == 1 and not report['ok'] and check['fix'] and '; fix: ' in line
    if status == 'warn':
        assert check['fix'] and '; fix: ' in line
    assert needle in check['message'] + check['fix'], (needle, check)
    return rc, check


@pytest.fixture
def healthy(inited_repo, shm_dir, monkeypatch):
    """An inited repo whose root is on /dev/shm (not the home filesystem), so
    that doctor is all green before each test breaks one thing."""
    root = shm_dir / 'root'
    root.mkdir(mode=0o700)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    ckpt('init', cwd=inited_repo)
    report = json.loads(ckpt('doctor', '--json', cwd=inited_repo).stdout)
    assert report['problems'] == 0 and report['warnings'] == 0, report
    return inited_repo


def test_all_good_and_json_schema(healthy):
    rc, lines, report = doctor(healthy)
    assert rc == 0
    assert lines[-1] == 'doctor: all good, 0 warning(s)'
    assert set(report) == {'schema', 'version', 'ok', 'problems', 'warnings', 'checks'}
    assert report['schema'] == 1 and report['ok'] is True
    ids = {c['id'] for c in report['checks']}
    assert {'root.resolved', 'root.usable', 'root.modes', 'root.filesystem', 'space', 'hook.installed',
            'hook.executable', 'hook.python', 'ignore.block', 'worktrees.distinct', 'orphans',
            'transformers', 'hf.cache'} <= ids
    for check in report['checks']:
        assert set(check) == {'id', 'subject', 'status', 'message', 'fix', 'data'}
        assert check['status'] in ('ok', 'warn', 'fail', 'skip')
    assert find(report, 'root.resolved')['data']['source'] == 'GIT_CKPT_ROOT'


def test_fallback_root_on_home_is_a_warning(healthy, hermetic, monkeypatch):
    monkeypatch.delenv('GIT_CKPT_ROOT')
    rc, check = expect(healthy, 'root.resolved', 'warn', needle='git config --global ckpt.root')
    assert 'fallback' in check['message'] and rc == 0


def test_root_from_git_config_is_reported(healthy, shm_dir, monkeypatch):
    monkeypatch.delenv('GIT_CKPT_ROOT')
    git('config', 'ckpt.root', shm_dir / 'root', cwd=healthy)
    expect(healthy, 'root.resolved', 'ok', needle='git config ckpt.root (local)')


def test_missing_root(healthy, shm_dir):
    shutil.rmtree(shm_dir / 'root')
    expect(healthy, 'root.usable', 'fail', needle='does not exist')
    (shm_dir / 'root').mkdir(mode=0o700)
    expect(healthy, 'root.usable', 'ok')


def test_root_owned_by_someone_else(healthy, shm_dir, unprivileged_user):
    os.chown(shm_dir / 'root', unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    expect(healthy, 'root.usable', 'fail', needle='owned by ckpt-test-user')
    os.chown(shm_dir / 'root', os.geteuid(), os.getegid())
    expect(healthy, 'root.usable', 'ok')


def test_world_writable_root(healthy, shm_dir):
    os.chmod(shm_dir / 'root', 0o777)
    expect(healthy, 'root.usable', 'fail', needle='world-writable')
    os.chmod(shm_dir / 'root', 0o700)
    expect(healthy, 'root.usable', 'ok')


def test_read_only_root(inited_repo, tmpfs_mount, monkeypatch):
    # Root bypasses permission bits, so "not writable" is made with a read-only filesystem.
    root = tmpfs_mount('ro', size='64m')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    run(['mount', '-o', 'remount,ro', root])
    expect(inited_repo, 'root.usable', 'fail', needle='not writable')
    run(['mount', '-o', 'remount,rw', root])
    expect(inited_repo, 'root.usable', 'ok')


def test_scratch_dir_not_private(healthy):
    scratch = scratch_path(healthy)
    os.chmod(scratch, 0o755)
    expect(healthy, 'root.modes', 'fail', needle=f'{scratch} (755)')
    os.chmod(scratch, 0o700)
    expect(healthy, 'root.modes', 'ok')


def test_dir_planted_by_someone_else(healthy, unprivileged_user):
    scratch = scratch_path(healthy)
    os.chown(scratch.parent, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    expect(healthy, 'root.modes', 'fail', needle=f'owned by uid {unprivileged_user.pw_uid}')
    os.chown(scratch.parent, 0, 0)
    expect(healthy, 'root.modes', 'ok')


def test_root_on_the_home_filesystem_warns(healthy, hermetic, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hermetic.root))  # tmp_path: same fs as HOME
    rc, _ = expect(healthy, 'root.filesystem', 'warn', needle='same filesystem as $HOME')
    assert rc == 0  # a warning alone is not a failure


def test_low_space_on_root(inited_repo, tmpfs_mount, monkeypatch):
    root = tmpfs_mount('small', size='50m')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    expect(inited_repo, 'space', 'fail', subject='root', needle='free on root')
    run(['mount', '-o', 'remount,size=2g', root])  # tmpfs resize allocates nothing
    expect(inited_repo, 'space', 'ok', subject='root')


def test_low_space_on_home(healthy, tmpfs_mount, monkeypatch):
    home = tmpfs_mount('smallhome', size='500m')
    monkeypatch.setenv('HOME', os.fspath(home))
    expect(healthy, 'space', 'warn', subject='home', needle='free on home')
    with open(home / 'fill', 'wb') as f:
        f.truncate(0)
        os.posix_fallocate(f.fileno(), 0, 450 * 2**20)
    expect(healthy, 'space', 'fail', subject='home')
    os.unlink(home / 'fill')
    run(['mount', '-o', 'remount,size=2g', home])
    expect(healthy, 'space', 'ok', subject='home')


def test_hook_missing_or_foreign(healthy):
    hook = healthy / '.git' / 'hooks' / 'post-checkout'
    hook.unlink()
    expect(healthy, 'hook.installed', 'fail', subject='post-checkout', needle='git ckpt init')
    hook.write_text('#!/bin/sh\necho someone else\n')
    hook.chmod(0o755)
    expect(healthy, 'hook.installed', 'fail', subject='post-checkout', needle="not git-ckpt's hook")
    ckpt('init', cwd=healthy)
    expect(healthy, 'hook.installed', 'ok', subject='post-checkout')


def test_hook_not_executable(healthy):
    hook = healthy / '.git' / 'hooks' / 'post-checkout'
    hook.chmod(0o644)
    expect(healthy, 'hook.executable', 'fail', subject='post-checkout', needle=f'chmod +x {hook}')
    hook.chmod(0o755)
    expect(healthy, 'hook.executable', 'ok', subject='post-checkout')


def _set_hook_python(hook: Path, python: str) -> None:
    lines = hook.read_text().splitlines(keepends=True)
    hook.write_text(''.join(f"INSTALL_PYTHON='{python}'\n" if l.startswith('INSTALL_PYTHON=') else l
                            for l in lines))


def test_hook_python_without_git_ckpt(healthy):
    # The base interpreter (the venv's parent) does not have git_ckpt installed.
    base = os.path.join(sys.base_prefix, 'bin', 'python3')
    if subprocess.run([base, '-c', 'import git_ckpt'], capture_output=True, cwd='/').returncode == 0:
        pytest.skip('the base Python has git_ckpt installed')
    hook = healthy / '.git' / 'hooks' / 'post-checkout'
    _set_hook_python(hook, base)
    # The shim falls back to git-ckpt on PATH: a warning while that works...
    expect(healthy, 'hook.python', 'warn', subject='post-checkout', needle='cannot run git-ckpt')
    # ...a problem when it does not.
    env = {**os.environ, 'PATH': '/usr/bin:/bin'}
    proc = run([sys.executable, '-m', 'git_ckpt', 'doctor', '--json'], cwd=healthy, env=env, check=False)
    check = find(json.loads(proc.stdout), 'hook.python', 'post-checkout')
    assert proc.returncode == 1 and check['status'] == 'fail' and 'cannot reach git-ckpt' in check['message']
    ckpt('init', cwd=healthy)
    expect(healthy, 'hook.python', 'ok', subject='post-checkout', needle=sys.executable)


def test_hook_python_gone(healthy, hermetic):
    hook = healthy / '.git' / 'hooks' / 'post-checkout'
    _set_hook_python(hook, '/nonexistent/python')
    # git-ckpt on PATH still works
    expect(healthy, 'hook.python', 'warn', subject='post-checkout', needle='falls back to')
    # without git-ckpt on PATH the hook reaches nothing
    env = {**os.environ, 'PATH': '/usr/bin:/bin'}
    proc = run([sys.executable, '-m', 'git_ckpt', 'doctor', '--json'], cwd=healthy, env=env, check=False)
    check = find(json.loads(proc.stdout), 'hook.python', 'post-checkout')
    assert proc.returncode == 1 and check['status'] == 'fail' and 'cannot reach git-ckpt' in check['message']
    ckpt('init', cwd=healthy)
    expect(healthy, 'hook.python', 'ok', subject='post-checkout')


def test_ignore_block_missing(healthy):
    (healthy / '.gitignore').unlink()
    expect(healthy, 'ignore.block', 'fail', needle='git ckpt init')
    ckpt('init', cwd=healthy)
    expect(healthy, 'ignore.block', 'ok')


def test_worktrees_sharing_a_dir(healthy, hermetic):
    wt = hermetic.tmp / 'projects' / 'exp1'
    git('worktree', 'add', '-q', wt, cwd=healthy)
    admin = Path(git('rev-parse', '--path-format=absolute', '--git-dir', cwd=wt).stdout.strip())
    expect(healthy, 'worktrees.distinct', 'ok', needle='2 worktree(s)')
    # A copied id file (e.g. a copied admin dir) makes two worktrees share one dir.
    shutil.copy(healthy / '.git' / 'ckpt-worktree', admin / 'ckpt-worktree')
    rc, check = expect(healthy, 'worktrees.distinct', 'fail', needle='share the scratch dir')
    assert os.fspath(wt) in check['message']
    # The fix it prints, run in the copy.
    (admin / 'ckpt-worktree').unlink()
    ckpt('path', cwd=wt)
    expect(healthy, 'worktrees.distinct', 'ok')


def test_worktree_without_scratch_dir_warns(healthy, hermetic):
    wt = hermetic.tmp / 'projects' / 'exp1'
    git('-c', 'core.hooksPath=/nonexistent', 'worktree', 'add', '-q', wt, cwd=healthy)  # no hook ran
    rc, check = expect(healthy, 'worktrees.created', 'warn', needle=os.fspath(wt))
    assert rc == 0
    ckpt('init', cwd=healthy)
    rc, lines, report = doctor(healthy)
    assert not [c for c in report['checks'] if c['id'] == 'worktrees.created']


def test_orphans_counted_with_size(healthy, hermetic):
    wt = hermetic.tmp / 'projects' / 'gone'
    git('worktree', 'add', '-q', wt, cwd=healthy)
    orphan = scratch_path(wt)
    (orphan / 'w.bin').write_bytes(os.urandom(3 * 2**20))
    git('worktree', 'remove', '--force', wt, cwd=healthy)
    rc, check = expect(healthy, 'orphans', 'warn', needle='1 orphaned')
    assert check['data']['count'] == 1 and check['data']['bytes'] >= 3 * 2**20
    assert check['data']['paths'] == [os.fspath(orphan)]
    shutil.rmtree(orphan)
    expect(healthy, 'orphans', 'ok')


def _fake_distribution(where: Path, version: str) -> None:
    info = where / f'transformers-{version}.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: transformers\nVersion: {version}\n')


@pytest.mark.parametrize('version', ['4.10.0', '6.1.0'])
def test_unsupported_transformers(healthy, hermetic, version):
    # A distribution earlier on sys.path is what importlib.metadata (and pip) see.
    site = hermetic.tmp / f'site-{version}'
    _fake_distribution(site, version)
    env = {**os.environ, 'PYTHONPATH': os.fspath(site)}
    expect(healthy, 'transformers', 'fail', env=env, needle=version)
    expect(healthy, 'transformers', 'ok')  # the installed 5.x


def test_transformers_version_is_read_without_importing_it():
    code = ('import sys; from git_ckpt import doctor; doctor.check_transformers(); '
            'print("transformers" in sys.modules)')
    assert run([sys.executable, '-c', code]).stdout.strip() == 'False'


def test_hf_cache_in_home_warns_until_moved(healthy, hermetic, shm_dir, monkeypatch):
    cache = hermetic.home / '.cache' / 'huggingface'
    (cache / 'hub').mkdir(parents=True)
    (cache / 'hub' / 'model.safetensors').write_bytes(os.urandom(2 * 2**20))
    rc, check = expect(healthy, 'hf.cache', 'warn', needle='git ckpt migrate --hf-cache')
    assert check['data']['bytes'] >= 2 * 2**20 and rc == 0
    shutil.move(cache, shm_dir / 'hf')
    monkeypatch.setenv('HF_HOME', os.fspath(shm_dir / 'hf'))
    expect(healthy, 'hf.cache', 'ok', needle='other than home')


@pytest.mark.parametrize('breakage, status, needle', [
    # not linked (yet) in an existing worktree: nothing lands in home yet
    (lambda link, target: link.unlink(), 'warn', 'git ckpt link outputs'),
    (lambda link, target: (link.unlink(), link.mkdir()), 'warn', 'plain empty dir'),
    # data going to the worktree instead of scratch, or a link gone wrong
    (lambda link, target: (link.unlink(), link.mkdir(), (link / 'f').write_text('x')), 'fail',
     'git ckpt migrate outputs'),
    (lambda link, target: (link.unlink(), link.symlink_to('/tmp')), 'fail', 'rm outputs'),
    (lambda link, target: target.rmdir(), 'fail', 'git ckpt link outputs'),
])
def test_broken_links(healthy, breakage, status, needle):
    ckpt('link', 'outputs', cwd=healthy)
    expect(healthy, 'link', 'ok', subject='outputs')
    link = healthy / 'outputs'
    breakage(link, scratch_path(healthy) / 'outputs')
    rc, _ = expect(healthy, 'link', status, subject='outputs', needle=needle)
    assert rc == (1 if status == 'fail' else 0)
    if status == 'fail' and link.is_dir() and not link.is_symlink():
        # the fix it names: migrate moves the data and links
        ckpt('migrate', 'outputs', cwd=healthy)
    if not link.is_symlink() and link.is_dir():
        shutil.rmtree(link)
    elif link.is_symlink() and os.readlink(link) == '/tmp':
        link.unlink()
    ckpt('link', cwd=healthy)
    expect(healthy, 'link', 'ok', subject='outputs')


def test_link_missing_from_ignore_block_warns(healthy):
    ckpt('link', 'outputs', cwd=healthy)
    gi = healthy / '.gitignore'
    gi.write_text(gi.read_text().replace('/outputs\n', ''))
    expect(healthy, 'link', 'warn', subject='outputs', needle='git ckpt init')
    ckpt('init', cwd=healthy)
    expect(healthy, 'link', 'ok', subject='outputs')


def test_outside_a_repository_checks_what_it_can(hermetic, shm_dir, monkeypatch):
    root = shm_dir / 'root'
    root.mkdir(mode=0o700)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    rc, lines, report = doctor(hermetic.tmp)
    assert rc == 0
    assert find(report, 'repository')['status'] == 'skip'
    assert find(report, 'root.usable')['status'] == 'ok'


def test_a_terminal_without_unicode_gets_words(healthy):
    (healthy / '.gitignore').unlink()
    proc = ckpt('doctor', cwd=healthy, check=False, env={**os.environ, 'PYTHONIOENCODING': 'ascii'})
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith('FAIL no git-ckpt block') for line in lines), lines
    assert any(line.startswith('OK ') for line in lines)


# --- issue 8: bad repositories and paths someone else had a hand in -------------

def test_doctor_in_a_bare_repository_says_so(hermetic, repo):
    bare = hermetic.tmp / 'proj.git'
    git('clone', '-q', '--bare', repo, bare)
    code, lines, report = doctor(bare)
    assert code == 0
    skipped = [c for c in report['checks'] if c['status'] == 'skip' and 'bare repository' in c['message']]
    assert len(skipped) == 1, report


def test_doctor_reports_a_pre_created_project_dir_as_a_problem(inited_repo, unprivileged_user):
    scratch = scratch_path(inited_repo)
    os.chown(scratch.parent, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    code, lines, report = doctor(inited_repo)
    assert code == 1
    failed = [c for c in report['checks'] if c['status'] == 'fail' and 'owned by' in c['message']]
    assert failed and scratch.parent.name in failed[0]['message'], report


def _set_hook_line(hook: Path, prefix: str, value: str) -> None:
    lines = hook.read_text().splitlines(keepends=True)
    hook.write_text(''.join(f"{prefix}'{value}'\n" if l.startswith(prefix) else l for l in lines))


def test_pre_commit_probe_runs_the_hooks_own_launcher(healthy, hermetic):
    """The pre-commit shim starts `python -S` with git_ckpt's dir from its
    INSTALL_PATH line: doctor asks that launcher, so a Python that cannot
    `import git_ckpt` by itself but reaches it through INSTALL_PATH is fine,
    and a wrong INSTALL_PATH is seen (the commit guard would fall back)."""
    base = os.path.join(sys.base_prefix, 'bin', 'python3')
    if subprocess.run([base, '-c', 'import git_ckpt'], capture_output=True, cwd='/').returncode == 0:
        pytest.skip('the base Python has git_ckpt installed')
    hook = healthy / '.git' / 'hooks' / 'pre-commit'
    _set_hook_python(hook, base)
    expect(healthy, 'hook.python', 'ok', subject='pre-commit', needle=base)
    # The guard itself works the same way: a real commit is checked.
    (healthy / 'out' / 'checkpoint-1').mkdir(parents=True)
    (healthy / 'out' / 'checkpoint-1' / 'optimizer.pt').write_bytes(b'x')
    git('add', '-f', 'out', cwd=healthy)
    proc = git('commit', '-qm', 'x', cwd=healthy, check=False)
    assert proc.returncode == 1 and 'out/checkpoint-1/' in proc.stderr, proc.stderr
    empty = hermetic.tmp / 'empty'
    empty.mkdir()
    _set_hook_line(hook, 'INSTALL_PATH=', os.fspath(empty))
    expect(healthy, 'hook.python', 'warn', subject='pre-commit', needle='cannot run git-ckpt')
