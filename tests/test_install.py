"""`git ckpt init`, `path` and `uninstall` (issue 2, sections 4 and 5)."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from conftest import add_worktree, assert_error, ckpt, git, run, scratch_path
from git_ckpt import constants as C


def snapshot(repo: Path, root: Path) -> dict:
    """Everything `init` may touch, to compare two runs."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            tree[os.fspath(path.relative_to(root))] = (
                path.read_bytes() if path.is_file() else stat.S_IMODE(path.stat().st_mode))
    hooks_dir = repo / '.git' / 'hooks'
    return {
        'tree': tree,
        'hooks': {p.name: p.read_bytes() for p in hooks_dir.iterdir() if not p.name.endswith('.sample')},
        'gitignore': (repo / '.gitignore').read_text(),
        'config': git('config', '--local', '--list', cwd=repo).stdout,
        'global': git('config', '--global', '--list', cwd=repo).stdout,
        'ids': sorted(p.name for p in (repo / '.git').iterdir() if p.name.startswith('ckpt-')),
    }


# -- init ----------------------------------------------------------------------------

def test_init_sets_everything_up_and_says_so(repo, hermetic):
    proc = ckpt('init', cwd=repo)
    d = scratch_path(repo)
    assert d.is_dir() and (d / C.MANIFEST_NAME).is_file()
    assert (repo / '.git' / 'hooks' / 'post-checkout').is_file()
    lines = (repo / '.gitignore').read_text().splitlines()
    assert lines == [C.IGNORE_BEGIN, *C.IGNORE_PATTERNS, C.IGNORE_END]
    assert f'scratch root: {hermetic.root}  ({C.ENV_ROOT})' in proc.stdout
    assert f"this worktree's scratch dir: {d}" in proc.stdout
    assert proc.stderr == ''


def test_init_twice_gives_the_same_state(repo, hermetic):
    add_worktree(repo, hermetic.tmp / 'exp1')
    ckpt('init', cwd=repo)
    first = snapshot(repo, hermetic.root)
    proc = ckpt('init', cwd=repo)
    assert snapshot(repo, hermetic.root) == first
    assert 'hook post-checkout: unchanged' in proc.stdout
    assert 'created' not in proc.stdout and 'updated' not in proc.stdout
    assert proc.stdout.count('exists ') == 2


def test_ignored_patterns_really_ignore_checkpoints(inited_repo):
    for path in ('checkpoint-500/model.safetensors', 'out/tmp-checkpoint-3/x', 'checkpoints_a/b',
                 '.art/x', 'unsloth_compiled_cache/y'):
        (inited_repo / path).parent.mkdir(parents=True, exist_ok=True)
        (inited_repo / path).write_text('x')
        assert git('check-ignore', '-q', path, cwd=inited_repo, check=False).returncode == 0, path
    assert git('check-ignore', '-q', 'train.py', cwd=inited_repo, check=False).returncode == 1


def test_gitignore_block_is_kept_in_place_and_not_duplicated(repo):
    (repo / '.gitignore').write_text('*.pyc\n')
    ckpt('init', cwd=repo)
    with open(repo / '.gitignore', 'a') as f:
        f.write('wandb/\n')
    # The user also trims a line inside the block: init restores it in place.
    text = (repo / '.gitignore').read_text().replace('.art/\n', '')
    (repo / '.gitignore').write_text(text)
    ckpt('init', cwd=repo)
    ckpt('init', cwd=repo)
    lines = (repo / '.gitignore').read_text().splitlines()
    assert lines == ['*.pyc', '', C.IGNORE_BEGIN, *C.IGNORE_PATTERNS, C.IGNORE_END, 'wandb/']


def test_gitignore_without_trailing_newline(repo):
    (repo / '.gitignore').write_text('*.pyc')
    ckpt('init', cwd=repo)
    assert (repo / '.gitignore').read_text().startswith('*.pyc\n\n' + C.IGNORE_BEGIN + '\n')


def test_init_creates_the_dirs_of_existing_worktrees(repo, hermetic):
    exp1 = add_worktree(repo, hermetic.tmp / 'exp1')  # before init: no hook fired
    gone = add_worktree(repo, hermetic.tmp / 'gone')
    run(['rm', '-rf', gone])                           # prunable: skipped
    assert not scratch_path(exp1).exists()
    proc = ckpt('init', cwd=repo)
    assert scratch_path(exp1).is_dir()
    assert f'created {scratch_path(exp1)}  <- {exp1}' in proc.stdout
    assert 'gone' not in proc.stdout


def test_init_from_a_linked_worktree_of_a_bare_repo(hermetic):
    source = hermetic.tmp / 'src'
    git('init', '-q', source)
    git('commit', '-q', '--allow-empty', '-m', 'init', cwd=source)
    bare = hermetic.tmp / 'proj.git'
    git('clone', '-q', '--bare', source, bare)
    exp1 = hermetic.tmp / 'exp1'
    git('worktree', 'add', '-q', exp1, cwd=bare)
    ckpt('init', cwd=exp1)
    d = scratch_path(exp1)
    assert d.is_dir() and d.parent.name.startswith('proj-') and d.name.startswith('exp1-')
    add_worktree(bare, hermetic.tmp / 'exp2')
    assert scratch_path(hermetic.tmp / 'exp2').is_dir()


def test_init_root_is_stored_in_the_local_config(repo, hermetic, monkeypatch):
    monkeypatch.delenv('GIT_CKPT_ROOT')
    (hermetic.tmp / 'mine').mkdir(mode=0o700)
    ckpt('init', '--root', '../../mine', cwd=repo)  # relative to where you are
    assert git('config', '--local', C.CONFIG_ROOT, cwd=repo).stdout.strip() == os.fspath(hermetic.tmp / 'mine')
    assert git('config', '--global', C.CONFIG_ROOT, cwd=repo, check=False).returncode == 1
    assert scratch_path(repo).parent.parent == hermetic.tmp / 'mine'


def test_init_root_global(repo, hermetic, monkeypatch):
    monkeypatch.delenv('GIT_CKPT_ROOT')
    (hermetic.tmp / 'mine').mkdir(mode=0o700)
    ckpt('init', '--global', '--root', hermetic.tmp / 'mine', cwd=repo)
    assert git('config', '--global', C.CONFIG_ROOT, cwd=repo).stdout.strip() == os.fspath(hermetic.tmp / 'mine')
    assert git('config', '--local', C.CONFIG_ROOT, cwd=repo, check=False).returncode == 1
    assert f'({C.ENV_ROOT})' not in ckpt('init', cwd=repo).stdout


def test_init_global_needs_root(repo):
    assert_error(ckpt('init', '--global', cwd=repo, check=False), '--global needs --root')


def test_init_with_a_missing_root_stores_nothing(repo, hermetic):
    assert_error(ckpt('init', '--root', hermetic.tmp / 'nope', cwd=repo, check=False), 'does not exist')
    assert git('config', '--local', C.CONFIG_ROOT, cwd=repo, check=False).returncode == 1
    assert not (repo / '.git' / 'hooks' / 'post-checkout').exists()


def test_init_name_carries_the_project_dir_over(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    old_main, old_exp = scratch_path(inited_repo), scratch_path(exp1)
    (old_exp / 'checkpoint-10').mkdir()
    proc = ckpt('init', '--name', 'sweep', cwd=inited_repo)
    new_main, new_exp = scratch_path(inited_repo), scratch_path(exp1)
    assert new_main.parent.name.startswith('sweep-') and new_main.name == old_main.name
    assert new_exp.name == old_exp.name and (new_exp / 'checkpoint-10').is_dir()
    assert not old_main.parent.exists()
    assert f'moved {old_main.parent} -> {new_main.parent}' in proc.stdout
    assert json.loads((new_exp / C.MANIFEST_NAME).read_text())['project'] == new_main.parent.name
    # Same id, new name: the repo id stays the same.
    assert new_main.parent.name.rsplit('-', 1)[1] == old_main.parent.name.rsplit('-', 1)[1]


def test_init_name_does_not_merge_into_an_existing_dir(inited_repo, hermetic):
    old = scratch_path(inited_repo).parent
    repo_id = old.name.rsplit('-', 1)[1]
    (hermetic.root / f'sweep-{repo_id}').mkdir(mode=0o700)
    proc = ckpt('init', '--name', 'sweep', cwd=inited_repo)
    assert old.is_dir() and 'was not moved' in proc.stderr


@pytest.mark.parametrize('name', ['a/b', '..', ''])
def test_init_invalid_name_changes_nothing(repo, name):
    assert_error(ckpt('init', '--name', name, cwd=repo, check=False), 'invalid project name')
    assert git('config', '--local', C.CONFIG_NAME, cwd=repo, check=False).returncode == 1
    assert not (repo / '.gitignore').exists()


# -- path ------------------------------------------------------------------------------

def test_path_from_a_subdirectory_is_the_worktree_dir(inited_repo):
    sub = inited_repo / 'a' / 'b'
    sub.mkdir(parents=True)
    assert ckpt('path', cwd=sub).stdout == ckpt('path', cwd=inited_repo).stdout


def test_path_no_create_only_prints(repo):
    planned = Path(ckpt('path', '--no-create', cwd=repo).stdout.strip())
    assert not planned.exists()
    assert ckpt('path', cwd=repo).stdout.strip() == os.fspath(planned)
    assert planned.is_dir()


def test_path_root_flag(repo, hermetic):
    other = hermetic.tmp / 'other-root'
    other.mkdir(mode=0o700)
    for args in (('--root', other), (f'--root={other}',)):
        assert Path(ckpt('path', *args, cwd=repo).stdout.strip()).parent.parent == other


def test_path_in_shell_substitution(inited_repo):
    proc = run(['sh', '-c', 'out="$(git ckpt path)/run1"; mkdir "$out" && echo "$out"'], cwd=inited_repo)
    assert Path(proc.stdout.strip()).is_dir()
    assert Path(proc.stdout.strip()).parent == scratch_path(inited_repo)


def no_git_env(hermetic, **extra) -> dict:
    """PATH holding neither git nor anything else: only the interpreter is called."""
    empty = hermetic.tmp / 'empty-bin'
    empty.mkdir(exist_ok=True)
    return {**os.environ, 'PATH': os.fspath(empty), **extra}


def test_git_ckpt_dir_wins_with_no_git_at_all(hermetic):
    outside = hermetic.tmp / 'job'
    outside.mkdir()
    target = hermetic.tmp / 'jobs' / 'run 42'
    env = no_git_env(hermetic, GIT_CKPT_DIR=os.fspath(target))
    proc = run([sys.executable, '-m', 'git_ckpt', 'path'], cwd=outside, env=env)
    assert proc.stdout == f'{target}\n' and proc.stderr == ''
    assert target.is_dir()
    for path in (target, target.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    # Without git, outside a repo, the unset variable is an error naming the fix.
    env.pop('GIT_CKPT_DIR')
    assert_error(run([sys.executable, '-m', 'git_ckpt', 'path'], cwd=outside, env=env, check=False),
                 'git')


def test_git_ckpt_dir_wins_inside_a_repo_too(inited_repo, hermetic, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_DIR', os.fspath(hermetic.tmp / 'override'))
    assert ckpt('path', '--no-create', cwd=inited_repo).stdout.strip() == os.fspath(hermetic.tmp / 'override')
    assert not (hermetic.tmp / 'override').exists()
    assert ckpt('path', cwd=inited_repo).stdout.strip() == os.fspath(hermetic.tmp / 'override')
    assert (hermetic.tmp / 'override').is_dir()


def test_git_ckpt_dir_relative_and_tilde(hermetic, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_DIR', '~/ckpts')
    assert ckpt('path', cwd=hermetic.tmp).stdout.strip() == os.fspath(hermetic.home / 'ckpts')
    monkeypatch.setenv('GIT_CKPT_DIR', 'rel')
    assert ckpt('path', cwd=hermetic.tmp).stdout.strip() == os.fspath(hermetic.tmp / 'rel')


def test_git_ckpt_dir_symlink_is_refused(hermetic, monkeypatch):
    (hermetic.tmp / 'real').mkdir()
    (hermetic.tmp / 'link').symlink_to(hermetic.tmp / 'real')
    monkeypatch.setenv('GIT_CKPT_DIR', os.fspath(hermetic.tmp / 'link'))
    assert_error(ckpt('path', cwd=hermetic.tmp, check=False), 'symlink')


def test_git_ckpt_dir_owned_by_another_user_is_refused(hermetic, monkeypatch, unprivileged_user):
    theirs = hermetic.tmp / 'theirs'
    theirs.mkdir()
    os.chown(theirs, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    monkeypatch.setenv('GIT_CKPT_DIR', os.fspath(theirs))
    assert_error(ckpt('path', cwd=hermetic.tmp, check=False), 'owned by ckpt-test-user')
    monkeypatch.setenv('GIT_CKPT_DIR', os.fspath(theirs / 'sub'))  # a new dir inside it is ours
    os.chmod(theirs, 0o777)
    proc = ckpt('path', cwd=hermetic.tmp, check=False)
    assert proc.returncode == 0  # root may create there; the new dir is ours and private
    assert stat.S_IMODE((theirs / 'sub').stat().st_mode) == 0o700


# -- uninstall ----------------------------------------------------------------------------------

def test_uninstall_removes_hooks_and_keeps_the_rest(inited_repo, hermetic):
    d = scratch_path(inited_repo)
    gitignore = (inited_repo / '.gitignore').read_text()
    proc = ckpt('uninstall', cwd=inited_repo)
    assert 'hook post-checkout: removed' in proc.stdout
    assert 'left as they are' in proc.stdout
    assert not (inited_repo / '.git' / 'hooks' / 'post-checkout').exists()
    assert d.is_dir() and (inited_repo / '.gitignore').read_text() == gitignore
    add_worktree(inited_repo, hermetic.tmp / 'exp1')
    assert not scratch_path(hermetic.tmp / 'exp1').exists()  # no hook any more
    ckpt('init', cwd=inited_repo)
    assert (inited_repo / '.git' / 'hooks' / 'post-checkout').is_file()


def test_gitignore_that_is_not_utf8_is_kept_byte_for_byte(repo):
    (repo / '.gitignore').write_bytes(b'caf\xe9/\n')  # latin-1
    ckpt('init', cwd=repo)
    data = (repo / '.gitignore').read_bytes()
    assert data.startswith(b'caf\xe9/\n\n') and C.IGNORE_BEGIN.encode() in data
    ckpt('init', cwd=repo)
    assert (repo / '.gitignore').read_bytes() == data


def test_init_root_is_used_now_and_an_overriding_env_is_named(repo, hermetic):
    # GIT_CKPT_ROOT (set by the hermetic fixture) beats ckpt.root later on: say so.
    mine = hermetic.tmp / 'mine'
    mine.mkdir(mode=0o700)
    proc = ckpt('init', '--root', mine, cwd=repo)
    assert f'scratch root: {mine}  (--root)' in proc.stdout
    assert any(p.name.startswith('proj-') for p in mine.iterdir())
    warning, = proc.stderr.splitlines()
    assert warning.startswith('git-ckpt: warning: GIT_CKPT_ROOT=') and 'unset it' in warning


def test_init_global_root_shadowed_by_a_local_one_is_named(repo, hermetic, monkeypatch):
    monkeypatch.delenv('GIT_CKPT_ROOT')
    local, global_ = hermetic.tmp / 'local', hermetic.tmp / 'global'
    local.mkdir(mode=0o700)
    global_.mkdir(mode=0o700)
    git('config', '--local', C.CONFIG_ROOT, local, cwd=repo)
    proc = ckpt('init', '--global', '--root', global_, cwd=repo)
    assert "in this repository's git config" in proc.stderr
    assert scratch_path(repo).parent.parent == local  # later commands: local wins, as warned
