"""identity.py: the repository's id (copies and moves of a whole repository)
and the worktree ids in git's admin dirs, through `git ckpt path`."""
from __future__ import annotations

import os
from pathlib import Path

from conftest import add_worktree, assert_error, ckpt, run
from git_ckpt import constants as C
from test_worktree import _race, path_of


# -- copies and moves of a whole repository ---------------------------------------------

def test_a_copied_repo_gets_its_own_dir(inited_repo, hermetic):
    original = path_of(inited_repo)
    copy = hermetic.tmp / 'projects' / 'proj-copy'
    run(['cp', '-a', inited_repo, copy])
    assert (copy / '.git' / C.REPO_ID_FILE).read_text() == (inited_repo / '.git' / C.REPO_ID_FILE).read_text()
    copied = path_of(copy)
    assert copied.parent != original.parent
    assert copied.parent.name.startswith('proj-copy-')  # named after the copy
    # Both stay stable afterwards, and the original is unchanged.
    assert path_of(inited_repo) == original and path_of(copy) == copied


def test_a_moved_repo_keeps_its_dir_and_records_the_new_place(inited_repo, hermetic):
    before = path_of(inited_repo)
    moved = hermetic.tmp / 'elsewhere' / 'proj'
    moved.parent.mkdir()
    inited_repo.rename(moved)
    assert path_of(moved) == before
    assert (moved / '.git' / C.REPO_ID_FILE).read_text().splitlines()[1] == os.fspath(moved / '.git')
    # A copy made after the move is still told apart from the moved original.
    run(['cp', '-a', moved, hermetic.tmp / 'copy'])
    assert path_of(hermetic.tmp / 'copy').parent != before.parent


def test_concurrent_first_calls_in_a_copy_agree(inited_repo, hermetic):
    original = path_of(inited_repo)
    copy = hermetic.tmp / 'copy'
    run(['cp', '-a', inited_repo, copy])
    outs = _race(copy, 6)
    assert len(outs) == 1 and Path(outs.pop()).parent != original.parent
    assert not (copy / '.git' / 'ckpt-repo.lock').exists()


def test_an_id_file_from_an_older_version_is_upgraded_in_place(inited_repo):
    before = path_of(inited_repo)
    id_file = inited_repo / '.git' / C.REPO_ID_FILE
    id_file.write_text(id_file.read_text().splitlines()[0] + '\n')  # no recorded path
    assert path_of(inited_repo) == before
    assert len(id_file.read_text().splitlines()) == 2


def test_a_damaged_worktree_id_file_cannot_escape_the_root(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '--no-checkout')
    (inited_repo / '.git' / 'worktrees' / 'exp1' / C.WORKTREE_ID_FILE).write_text('..\n')
    assert_error(ckpt('path', cwd=exp1, check=False), 'damaged', 'delete it')


def test_a_lock_left_by_a_killed_process_is_cleared(inited_repo, hermetic):
    original = path_of(inited_repo)
    copy = hermetic.tmp / 'copy'
    run(['cp', '-a', inited_repo, copy])
    lock = copy / '.git' / 'ckpt-repo.lock'
    lock.mkdir()
    os.utime(lock, (0, 0))  # long ago
    assert path_of(copy).parent != original.parent
    assert not lock.exists()
