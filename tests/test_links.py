"""`git ckpt link` / `unlink` / `init --link`, and links made by the real post-checkout hook."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import ckpt, git, make_repo, scratch_path


def config_links(repo: Path, scope: str = 'local') -> list[str]:
    proc = git('config', f'--{scope}', '--get-all', 'ckpt.link', cwd=repo, check=False)
    return proc.stdout.split()


def assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith('git-ckpt: error: '), proc.stderr
    assert 'Traceback' not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_init_link_creates_links_ignore_lines_and_config(repo, hermetic):
    (repo / 'outputs').mkdir()  # an empty real dir may be replaced
    ckpt('init', '--link', '.art', '--link', 'outputs', cwd=repo)
    scratch = scratch_path(repo)
    for rel in ('.art', 'outputs'):
        link = repo / rel
        assert link.is_symlink()
        assert Path(os.readlink(link)) == scratch / rel
        assert stat.S_IMODE(os.stat(scratch / rel).st_mode) == 0o700
    assert config_links(repo) == ['.art', 'outputs']
    gitignore = (repo / '.gitignore').read_text().splitlines()
    assert '/.art' in gitignore and '/outputs' in gitignore
    # git sees the links as ignored, not as untracked files to commit.
    status = git('status', '--porcelain', cwd=repo).stdout
    assert '.art' not in status and 'outputs' not in status
    # Data written through the link lands in scratch.
    (repo / 'outputs' / 'model.bin').write_bytes(b'w' * 10)
    assert (scratch / 'outputs' / 'model.bin').read_bytes() == b'w' * 10


def test_new_worktree_gets_links_through_the_hook(inited_repo, hermetic):
    ckpt('link', '.art', 'lightning_logs', cwd=inited_repo)
    wt = hermetic.tmp / 'projects' / 'exp1'
    proc = git('worktree', 'add', '-q', wt, cwd=inited_repo)
    assert 'linked .art' in proc.stderr
    scratch = scratch_path(wt)
    assert scratch != scratch_path(inited_repo)
    for rel in ('.art', 'lightning_logs'):
        assert (wt / rel).is_symlink()
        assert Path(os.readlink(wt / rel)) == scratch / rel
        assert (scratch / rel).is_dir()


def test_global_links_reach_other_repositories(inited_repo, hermetic):
    ckpt('link', '--global', 'wandb', cwd=inited_repo)
    assert config_links(inited_repo, 'global') == ['wandb']
    assert config_links(inited_repo, 'local') == []
    other = make_repo(hermetic.tmp / 'projects' / 'other')
    ckpt('init', cwd=other)
    assert (other / 'wandb').is_symlink()
    wt = hermetic.tmp / 'projects' / 'other-exp'
    git('worktree', 'add', '-q', wt, cwd=other)
    assert Path(os.readlink(wt / 'wandb')) == scratch_path(wt) / 'wandb'
    ckpt('unlink', '--global', 'wandb', cwd=other)
    assert config_links(other, 'global') == []
    assert not (other / 'wandb').exists()


def test_link_is_idempotent_and_records_no_duplicates(inited_repo):
    ckpt('link', 'outputs', cwd=inited_repo)
    proc = ckpt('link', 'outputs', './outputs/', cwd=inited_repo)
    assert '(exists)' in proc.stdout
    assert config_links(inited_repo) == ['outputs']
    assert (inited_repo / '.gitignore').read_text().count('/outputs\n') == 1


def test_link_from_a_subdirectory_is_relative_to_the_top(inited_repo):
    sub = inited_repo / 'src'
    sub.mkdir()
    ckpt('link', 'runs', cwd=sub)
    assert config_links(inited_repo) == ['src/runs']
    assert (sub / 'runs').is_symlink()
    assert Path(os.readlink(sub / 'runs')) == scratch_path(inited_repo) / 'src' / 'runs'


def test_link_without_paths_recreates_the_configured_ones(inited_repo):
    ckpt('link', 'outputs', cwd=inited_repo)
    (inited_repo / 'outputs').unlink()
    ckpt('link', cwd=inited_repo)
    assert (inited_repo / 'outputs').is_symlink()


def test_link_without_paths_and_nothing_configured(inited_repo):
    assert_one_line_error(ckpt('link', cwd=inited_repo, check=False), 'no links configured')


@pytest.mark.parametrize('make, arg, needles', [
    (lambda r: None, '../elsewhere', ('outside the worktree',)),
    (lambda r: None, '/etc', ('outside the worktree',)),
    (lambda r: None, '.', ('worktree itself',)),
    (lambda r: None, '.git/foo', ('inside .git',)),
    (lambda r: (r / 'data.txt').write_text('x'), 'data.txt', ('is a file',)),
    (lambda r: os.symlink('/tmp', r / 'elsewhere'), 'elsewhere', ('already a symlink to /tmp',)),
    (lambda r: ((r / 'outputs').mkdir(), (r / 'outputs' / 'w.bin').write_bytes(b'1')),
     'outputs', ('data in it', 'git ckpt migrate outputs')),
    # A parent that is a symlink out of the worktree is outside too.
    (lambda r: os.symlink(r.parent, r / 'up'), 'up/x', ('outside the worktree',)),
])
def test_link_refuses_bad_paths_and_changes_nothing(inited_repo, make, arg, needles):
    make(inited_repo)
    before = sorted(p.name for p in inited_repo.iterdir())
    gitignore = (inited_repo / '.gitignore').read_text()
    proc = ckpt('link', 'good', arg, cwd=inited_repo, check=False)
    assert_one_line_error(proc, *needles)
    assert sorted(p.name for p in inited_repo.iterdir()) == before  # not even `good`
    assert config_links(inited_repo) == []
    assert (inited_repo / '.gitignore').read_text() == gitignore
    if (inited_repo / 'outputs' / 'w.bin').exists():
        assert (inited_repo / 'outputs' / 'w.bin').read_bytes() == b'1'


def test_init_link_refuses_a_data_dir_before_changing_anything(repo):
    (repo / 'outputs').mkdir()
    (repo / 'outputs' / 'w.bin').write_bytes(b'1')
    proc = ckpt('init', '--link', 'outputs', cwd=repo, check=False)
    assert_one_line_error(proc, 'git ckpt migrate outputs')
    assert config_links(repo) == []
    assert not (repo / '.git' / 'hooks' / 'post-checkout').exists()


def test_unlink_removes_only_the_link_and_keeps_the_data(inited_repo):
    ckpt('link', 'outputs', cwd=inited_repo)
    (inited_repo / 'outputs' / 'w.bin').write_bytes(b'data')
    scratch = scratch_path(inited_repo)
    proc = ckpt('unlink', 'outputs', cwd=inited_repo)
    assert 'data stays in' in proc.stdout
    assert not os.path.lexists(inited_repo / 'outputs')
    assert (scratch / 'outputs' / 'w.bin').read_bytes() == b'data'
    assert config_links(inited_repo) == []
    assert '/outputs' not in (inited_repo / '.gitignore').read_text()


@pytest.mark.parametrize('make, needles', [
    (lambda r: os.symlink('/tmp', r / 'outputs'), ('not a git-ckpt link', 'symlink to /tmp')),
    (lambda r: (r / 'outputs').mkdir(), ('not a git-ckpt link', 'real directory')),
    (lambda r: (r / 'outputs').write_text('x'), ('not a git-ckpt link', 'a file')),
])
def test_unlink_refuses_what_is_not_our_link(inited_repo, make, needles):
    make(inited_repo)
    proc = ckpt('unlink', 'outputs', cwd=inited_repo, check=False)
    assert_one_line_error(proc, *needles)
    assert os.path.lexists(inited_repo / 'outputs')


def test_unlink_outside_the_worktree(inited_repo):
    assert_one_line_error(ckpt('unlink', '/etc', cwd=inited_repo, check=False), 'outside the worktree')


def test_unlink_local_warns_when_the_global_config_still_links(inited_repo):
    ckpt('link', '--global', 'wandb', cwd=inited_repo)
    proc = ckpt('unlink', 'wandb', cwd=inited_repo)
    assert 'still in the global git config' in proc.stderr
    assert 'git ckpt unlink --global wandb' in proc.stderr


def test_hook_warns_but_never_fails_a_checkout_over_a_tracked_dir(inited_repo, hermetic):
    (inited_repo / 'outputs').mkdir()
    (inited_repo / 'outputs' / 'keep.txt').write_text('tracked\n')
    git('add', 'outputs/keep.txt', cwd=inited_repo)
    git('commit', '-q', '-m', 'tracked outputs', cwd=inited_repo)
    git('config', 'ckpt.link', 'outputs', cwd=inited_repo)
    wt = hermetic.tmp / 'projects' / 'exp2'
    proc = git('worktree', 'add', '-q', wt, cwd=inited_repo)
    assert 'link not created' in proc.stderr and 'git ckpt migrate outputs' in proc.stderr
    assert (wt / 'outputs' / 'keep.txt').read_text() == 'tracked\n'
    assert not (wt / 'outputs').is_symlink()


def test_a_link_into_an_old_root_is_repointed(inited_repo, hermetic):
    ckpt('link', 'outputs', cwd=inited_repo)
    old = scratch_path(inited_repo)
    new_root = hermetic.tmp / 'scratch2'
    new_root.mkdir(mode=0o700)
    env = {**os.environ, 'GIT_CKPT_ROOT': os.fspath(new_root)}
    proc = ckpt('link', cwd=inited_repo, env=env)
    assert '(repointed)' in proc.stdout
    target = Path(os.readlink(inited_repo / 'outputs'))
    assert target.is_relative_to(new_root) and target.name == 'outputs'
    assert old.name == target.parent.name  # the same worktree's dir
    # and unlink accepts a stale link of ours too
    os.unlink(inited_repo / 'outputs')
    os.symlink(old / 'outputs', inited_repo / 'outputs')
    ckpt('unlink', 'outputs', cwd=inited_repo, env=env)
    assert not os.path.lexists(inited_repo / 'outputs')


def test_ignore_pattern_escapes_glob_characters():
    from git_ckpt.links import ignore_pattern
    assert ignore_pattern('outputs') == '/outputs'
    assert ignore_pattern('a/b') == '/a/b'
    assert ignore_pattern('run[1]*?') == '/run\\[1]\\*\\?'
    assert ignore_pattern('x ') == '/x\\ '


def test_the_hook_path_stays_standard_library():
    """links.py runs inside post-checkout: importing it must not pull click, rich or git."""
    import subprocess
    import sys
    code = ('import sys; import git_ckpt.hook_entry, git_ckpt.links; '
            'print(sorted(m for m in ("click", "rich", "git") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'


def test_the_commit_guard_refuses_a_force_added_link(inited_repo):
    ckpt('link', 'outputs', cwd=inited_repo)
    git('add', '-f', 'outputs', cwd=inited_repo)  # past the ignore block, on purpose
    proc = git('commit', '-q', '-m', 'oops', cwd=inited_repo, check=False)
    assert proc.returncode != 0, proc
    assert 'outputs' in proc.stderr
    assert git('rev-list', '--count', 'HEAD', cwd=inited_repo).stdout.strip() == '1'
