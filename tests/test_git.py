"""git plumbing (git_ckpt/git.py) against real repositories."""
from __future__ import annotations

import os
import shutil

import pytest

from conftest import add_worktree, git, make_repo
from git_ckpt import git as G
from git_ckpt.errors import GitCkptError


def test_repo_paths_main_linked_subdir(repo, hermetic):
    exp1 = add_worktree(repo, hermetic.tmp / 'exp 1', '-b', 'exp1')
    main = G.repo_paths(repo)
    assert main == G.RepoPaths(repo, repo / '.git', repo / '.git', False)
    (exp1 / 'sub').mkdir()
    linked = G.repo_paths(exp1 / 'sub')
    assert linked.top == exp1 and linked.common_dir == repo / '.git'
    assert linked.git_dir == repo / '.git' / 'worktrees' / 'exp-1'  # git sanitizes admin names


def test_repo_paths_bare_and_git_dir_and_outside(hermetic, repo):
    bare = hermetic.tmp / 'b.git'
    git('init', '-q', '--bare', bare)
    paths = G.repo_paths(bare)
    assert paths.is_bare and paths.top is None and paths.common_dir == bare
    with pytest.raises(GitCkptError, match='inside a git dir'):
        G.repo_paths(repo / '.git')
    with pytest.raises(GitCkptError, match='not inside a git repository'):
        G.repo_paths(hermetic.tmp)
    with pytest.raises(GitCkptError, match='does not exist'):
        G.repo_paths(hermetic.tmp / 'missing')


def test_git_missing_is_one_error(hermetic, monkeypatch):
    monkeypatch.setenv('PATH', os.fspath(hermetic.tmp))
    with pytest.raises(GitCkptError, match='git is not installed') as info:
        G.run_git('--version')
    assert '2.36' in info.value.fix


def test_run_git_check_raises_with_gits_first_line(repo):
    with pytest.raises(GitCkptError, match="git rev-parse failed: fatal: ") as info:
        G.run_git('rev-parse', 'no-such-ref', cwd=repo)
    assert '\n' not in str(info.value)
    assert G.run_git('rev-parse', 'no-such-ref', cwd=repo, check=False).returncode != 0


def test_config_roundtrip_and_scopes(repo):
    G.config_set('ckpt.allow', 'a b', cwd=repo)
    G.config_set('ckpt.allow', 'c', add=True, cwd=repo)
    G.config_set('ckpt.root', '/g', scope='global', cwd=repo)
    G.config_set('ckpt.root', '/l', cwd=repo)
    assert G.config_get('ckpt.root', cwd=repo) == '/l'
    assert G.config_get('ckpt.nothing', cwd=repo) is None
    assert G.config_get_all(repo) == [
        ('global', 'ckpt.root', '/g'),
        ('local', 'ckpt.allow', 'a b'), ('local', 'ckpt.allow', 'c'), ('local', 'ckpt.root', '/l'),
    ]
    G.config_unset('ckpt.allow', value_pattern='^c$', cwd=repo)
    G.config_unset('ckpt.nothing', cwd=repo)  # nothing to unset: fine
    assert [v for _, k, v in G.config_get_all(repo) if k == 'ckpt.allow'] == ['a b']


def test_config_value_with_newline(repo):
    G.config_set('ckpt.name', 'two\nlines', cwd=repo)
    assert G.config_get_all(repo) == [('local', 'ckpt.name', 'two\nlines')]


def test_worktree_list(repo, hermetic):
    a = add_worktree(repo, hermetic.tmp / 'a b', '-b', 'feature/x')
    d = add_worktree(repo, hermetic.tmp / 'detached', '--detach')
    gone = add_worktree(repo, hermetic.tmp / 'gone')
    git('worktree', 'lock', '--reason', 'on a laptop', a, cwd=repo)
    shutil.rmtree(gone)
    entries = {e.path: e for e in G.worktree_list(repo)}
    assert entries[repo].branch == 'main' and not entries[repo].detached
    assert entries[a].branch == 'feature/x' and entries[a].locked
    assert entries[d].detached and entries[d].branch is None and len(entries[d].head) == 40
    assert entries[gone].prunable


def test_current_branch(repo):
    assert G.current_branch(repo) == 'main'
    git('checkout', '-q', '--detach', cwd=repo)
    assert G.current_branch(repo) is None


def test_clean_env_drops_repo_pinning_variables():
    env = G.clean_env({'GIT_DIR': '/x', 'GIT_WORK_TREE': '/y', 'GIT_INDEX_FILE': 'i', 'HOME': '/h'})
    assert env == {'HOME': '/h'}


def test_sha256_repo_paths(hermetic):
    repo = make_repo(hermetic.tmp / 'sha', object_format='sha256')
    assert G.repo_paths(repo).top == repo
    assert len(G.worktree_list(repo)[0].head) == 64


def test_repo_paths_with_a_newline_in_the_path(hermetic):
    repo = make_repo(hermetic.tmp / 'odd\nname')
    exp = hermetic.tmp / 'wt\nx'
    git('worktree', 'add', '-q', '-b', 'wt', exp, cwd=repo)
    assert G.repo_paths(repo) == G.RepoPaths(repo, repo / '.git', repo / '.git', False)
    linked = G.repo_paths(exp)
    assert linked.top == exp and linked.common_dir == repo / '.git'


# --- issue 8, scenario 6: a submodule's main worktree ---------------------------

def test_worktree_list_in_a_submodule_names_its_checkout_not_its_git_dir(hermetic):
    from conftest import make_repo
    from git_ckpt.git import worktree_list
    sub_src = make_repo(hermetic.tmp / 'sub-src')
    sup = make_repo(hermetic.tmp / 'super')
    git('submodule', 'add', '-q', sub_src, 'sub', cwd=sup)
    entries = worktree_list(sup / 'sub')
    assert entries[0].path == sup / 'sub'


def test_hook_top_and_common_dir_reads_what_rev_parse_says(repo, hermetic, monkeypatch):
    """In a hook git runs (GIT_PREFIX set, cwd = the top), .git is read
    instead of starting rev-parse; anything unusual asks rev-parse."""
    linked = add_worktree(repo, hermetic.tmp / 'linked wt', '-b', 'linked')
    monkeypatch.setenv('GIT_PREFIX', '')
    for top, git_dir_env in ((repo, None), (linked, None), (linked, repo / '.git' / 'worktrees' / 'linked-wt')):
        if git_dir_env:
            monkeypatch.setenv('GIT_DIR', os.fspath(git_dir_env))
        monkeypatch.chdir(top)
        paths = G.repo_paths(top)
        assert G.hook_top_and_common_dir() == (os.fspath(paths.top), os.fspath(paths.common_dir))
        assert G.hook_top_and_common_dir(os.fspath(top)) == (os.fspath(paths.top), os.fspath(paths.common_dir))
        monkeypatch.delenv('GIT_DIR', raising=False)
    monkeypatch.chdir(repo)
    for name in ('GIT_WORK_TREE', 'GIT_COMMON_DIR'):
        monkeypatch.setenv(name, os.fspath(repo))
        assert G.hook_top_and_common_dir() is None
        monkeypatch.delenv(name)
    monkeypatch.delenv('GIT_PREFIX')
    assert G.hook_top_and_common_dir() is None  # not run by git
    monkeypatch.setenv('GIT_PREFIX', '')
    monkeypatch.chdir(repo / '.git')
    assert G.hook_top_and_common_dir() is None  # no .git here
    (hermetic.tmp / 'odd').mkdir()
    (hermetic.tmp / 'odd' / '.git').write_text('gitdir: a\nb\n')
    monkeypatch.chdir(hermetic.tmp / 'odd')
    assert G.hook_top_and_common_dir() is None  # a gitdir file git would not write
