"""`git ckpt prune` (issue 4, section 3): policy, dry run, safety, bad input.
Real scratch trees; the CLI is driven as a user types it in a real repository."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import (HOUR_AGO, add_worktree, assert_error, ckpt, make_checkpoint, scratch_path, set_age,
                      tree_digest)
from git_ckpt import constants as C
from git_ckpt import retention
from git_ckpt.errors import GitCkptError
from git_ckpt.inventory import scan


def names(run_dir: Path) -> list[str]:
    return sorted(os.listdir(run_dir))


def steps_run(run_dir: Path, steps, age: float = HOUR_AGO, **kwargs) -> Path:
    """Checkpoints written in step order (higher steps are newer), `age` ago or earlier."""
    ordered = sorted(steps)
    for i, step in enumerate(ordered):
        make_checkpoint(run_dir, f'checkpoint-{step}', age=age + 10 * (len(ordered) - i), **kwargs)
    return run_dir


@pytest.fixture
def wt_scratch(inited_repo) -> Path:
    """The real scratch dir of a real repository's main worktree."""
    path = scratch_path(inited_repo)
    assert (path / C.MANIFEST_NAME).is_file()
    return path


def test_keeps_the_highest_steps_as_integers(inited_repo, wt_scratch):
    run_dir = steps_run(wt_scratch / 'run', (9900, 10000, 500, 99))
    proc = ckpt('prune', '--keep', '2', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-10000', 'checkpoint-9900']
    assert 'deleted run/checkpoint-500' in proc.stdout and 'deleted run/checkpoint-99' in proc.stdout
    assert 'freed ' in proc.stdout
    ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-10000']


def test_best_is_kept_with_keep_1(inited_repo, wt_scratch):
    state = {'best_model_checkpoint': '/old/prefix/run/checkpoint-200'}
    run_dir = steps_run(wt_scratch / 'run', (100, 200, 300, 400), state=state)
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-200', 'checkpoint-400']
    assert 'keep   run/checkpoint-200' in proc.stdout and 'best checkpoint' in proc.stdout
    ckpt('prune', '--keep', '1', '--no-keep-best', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-400']


def test_in_progress_and_incomplete_checkpoints_are_kept(inited_repo, wt_scratch):
    run_dir = steps_run(wt_scratch / 'run', (1, 2, 3))
    make_checkpoint(run_dir, 'tmp-checkpoint-4', state=None)
    make_checkpoint(run_dir, 'checkpoint-0', state=None)  # crashed mid-save, long ago
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-0', 'checkpoint-3', 'tmp-checkpoint-4']
    assert 'in progress' in proc.stdout and 'incomplete' in proc.stdout


def test_incomplete_highest_step_does_not_count_towards_keep(managed_scratch):
    """keep=1 with a crashed checkpoint-300 (no trainer_state.json): the newest
    usable checkpoint-200 must survive."""
    run_dir = steps_run(managed_scratch / 'run', (100, 200))
    make_checkpoint(run_dir, 'checkpoint-300', state=None)
    plan = retention.plan(scan(managed_scratch), keep=1)
    assert [c.name for c in plan.to_delete] == ['checkpoint-100']


def test_grace_window(inited_repo, wt_scratch):
    run_dir = steps_run(wt_scratch / 'run', (1, 2))
    make_checkpoint(run_dir, 'checkpoint-3', age=5)
    make_checkpoint(run_dir, 'checkpoint-4', age=5)
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-3', 'checkpoint-4']
    assert 'grace' in proc.stdout
    ckpt('prune', '--keep', '1', '--grace', '0', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-4']


def test_most_recently_written_is_kept_in_a_reused_output_dir(managed_scratch):
    """The transformers bug: a fresh run in a reused output_dir lost its new
    checkpoint to a stale higher-numbered one."""
    run_dir = managed_scratch / 'out'
    make_checkpoint(run_dir, 'checkpoint-900', age=30 * HOUR_AGO)   # stale run
    make_checkpoint(run_dir, 'checkpoint-100', age=2 * HOUR_AGO)    # fresh run
    make_checkpoint(run_dir, 'checkpoint-200', age=HOUR_AGO)
    plan = retention.plan(scan(managed_scratch), keep=1)
    assert [c.name for c in plan.to_delete] == ['checkpoint-100']
    reasons = {d.checkpoint.name: d.reasons for d in plan.decisions}
    assert 'most recently written' in reasons['checkpoint-200']


def test_dry_run_deletes_nothing(inited_repo, wt_scratch):
    run_dir = steps_run(wt_scratch / 'run', range(1, 6))
    before = tree_digest(wt_scratch)
    proc = ckpt('prune', '--keep', '2', '--dry-run', cwd=inited_repo)
    assert tree_digest(wt_scratch) == before
    for step in (1, 2, 3):
        assert f'would delete run/checkpoint-{step}' in proc.stdout
    assert 'would free' in proc.stdout and 'nothing deleted' in proc.stdout
    plan = retention.plan(scan(wt_scratch), keep=2)
    assert plan.bytes_freed == sum(c.size for c in plan.to_delete) > 0
    assert len(names(run_dir)) == 5


def test_path_argument_limits_to_one_run(inited_repo, wt_scratch):
    a = steps_run(wt_scratch / 'a', (1, 2, 3))
    b = steps_run(wt_scratch / 'b', (1, 2, 3))
    ckpt('prune', '--keep', '1', a, cwd=inited_repo)
    assert names(a) == ['checkpoint-3'] and len(names(b)) == 3


def test_all_worktrees(inited_repo, wt_scratch):
    other = add_worktree(inited_repo, inited_repo.parent / 'exp1')
    other_scratch = scratch_path(other)
    a = steps_run(wt_scratch / 'run', (1, 2))
    b = steps_run(other_scratch / 'run', (1, 2))
    ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert names(a) == ['checkpoint-2'] and len(names(b)) == 2
    ckpt('prune', '--keep', '1', '--all-worktrees', cwd=inited_repo)
    assert names(b) == ['checkpoint-2']


def sentinel(tmp_path: Path) -> Path:
    outside = tmp_path / 'precious'
    outside.mkdir()
    (outside / 'weights.bin').write_bytes(os.urandom(4096))
    (outside / 'sub').mkdir()
    (outside / 'sub' / 'notes.txt').write_text('do not delete')
    return outside


def test_symlink_targets_are_untouched(inited_repo, wt_scratch, tmp_path):
    outside = sentinel(tmp_path)
    digest = tree_digest(outside)
    run_dir = steps_run(wt_scratch / 'run', (1, 2, 3))
    # A checkpoint that contains links pointing outside: deleted, links as links.
    (run_dir / 'checkpoint-1' / 'linked-dir').symlink_to(outside)
    (run_dir / 'checkpoint-1' / 'linked-file').symlink_to(outside / 'weights.bin')
    # A "checkpoint" that is itself a symlink to a checkpoint-like dir outside.
    set_age(run_dir / 'checkpoint-1', 2 * HOUR_AGO)
    fake = make_checkpoint(tmp_path / 'elsewhere', 'checkpoint-0')
    (run_dir / 'checkpoint-0').symlink_to(fake)
    fake_digest = tree_digest(fake)
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-0', 'checkpoint-3']
    assert (run_dir / 'checkpoint-0').is_symlink()
    assert tree_digest(outside) == digest
    assert tree_digest(fake) == fake_digest
    assert 'symlink' in proc.stderr


def test_dir_swapped_for_a_symlink_after_planning_is_not_followed(managed_scratch, tmp_path):
    outside = sentinel(tmp_path)
    digest = tree_digest(outside)
    run_dir = steps_run(managed_scratch / 'run', (1, 2))
    plan = retention.plan(scan(managed_scratch), keep=1)
    assert [c.name for c in plan.to_delete] == ['checkpoint-1']
    # Between listing and deleting, the checkpoint becomes a link to the sentinel.
    os.rename(run_dir / 'checkpoint-1', tmp_path / 'moved-away')
    (run_dir / 'checkpoint-1').symlink_to(outside)
    assert retention.apply(plan) == 0
    assert plan.deleted == [] and 'no longer a directory' in plan.failures[0]
    assert tree_digest(outside) == digest
    assert (run_dir / 'checkpoint-1').is_symlink()


def test_run_dir_swapped_for_a_symlink_is_not_followed(managed_scratch, tmp_path):
    outside_run = tmp_path / 'outside-run'
    steps_run(outside_run, (1, 2))
    digest = tree_digest(outside_run)
    run_dir = steps_run(managed_scratch / 'run', (1, 2))
    plan = retention.plan(scan(managed_scratch), keep=1)
    os.rename(run_dir, tmp_path / 'real-run')
    run_dir.symlink_to(outside_run)  # same names behind the link
    assert retention.apply(plan) == 0
    assert 'cannot be opened safely' in plan.failures[0]
    assert tree_digest(outside_run) == digest


def test_replaced_checkpoint_is_not_deleted(managed_scratch):
    run_dir = steps_run(managed_scratch / 'run', (1, 2))
    plan = retention.plan(scan(managed_scratch), keep=1)
    os.rename(run_dir / 'checkpoint-1', run_dir / 'old')
    make_checkpoint(run_dir, 'checkpoint-1')  # a new dir under the planned name
    assert retention.apply(plan) == 0
    assert 'replaced' in plan.failures[0]
    assert (run_dir / 'checkpoint-1' / 'trainer_state.json').is_file()


def test_keep_zero_and_bad_values_are_refused(inited_repo, wt_scratch):
    steps_run(wt_scratch / 'run', (1, 2))
    assert_error(ckpt('prune', '--keep', '0', cwd=inited_repo, check=False), '--keep must be at least 1')
    assert_error(ckpt('prune', '--keep', '-3', cwd=inited_repo, check=False), '--keep must be at least 1')
    assert_error(ckpt('prune', '--keep', 'two', cwd=inited_repo, check=False), 'two')
    assert_error(ckpt('prune', cwd=inited_repo, check=False), '--keep')
    assert_error(ckpt('prune', '--keep', '1', '--grace', '-1', cwd=inited_repo, check=False), '--grace')
    assert len(names(wt_scratch / 'run')) == 2
    with pytest.raises(GitCkptError):
        retention.plan(scan(wt_scratch), keep=0)


def test_unmanaged_dir_is_refused(inited_repo, tmp_path):
    plain = steps_run(tmp_path / 'plain' / 'run', (1, 2, 3))
    before = tree_digest(plain)
    assert_error(ckpt('prune', '--keep', '1', plain, cwd=inited_repo, check=False), 'not inside a scratch dir')
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo, check=False,
                env={**os.environ, C.ENV_DIR: os.fspath(tmp_path / 'plain')})
    assert_error(proc, 'scratch dir managed by git-ckpt')
    assert tree_digest(plain) == before
    with pytest.raises(GitCkptError):
        retention.plan(scan(tmp_path / 'plain'), keep=1)


def test_manifest_removed_after_planning(managed_scratch):
    steps_run(managed_scratch / 'run', (1, 2))
    plan = retention.plan(scan(managed_scratch), keep=1)
    (managed_scratch / C.MANIFEST_NAME).unlink()
    with pytest.raises(GitCkptError, match='does not manage'):
        retention.apply(plan)
    assert len(names(managed_scratch / 'run')) == 2


def test_what_cannot_be_judged_is_skipped_and_reported(inited_repo, wt_scratch):
    run_dir = steps_run(wt_scratch / 'run', (1, 2, 3))
    make_checkpoint(run_dir, 'checkpoint-abc')
    make_checkpoint(run_dir, 'checkpoint-0', state='{corrupt', age=2 * HOUR_AGO)
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-0', 'checkpoint-3', 'checkpoint-abc']
    assert 'checkpoint-abc' in proc.stderr and 'not a number' in proc.stderr
    assert 'checkpoint-0' in proc.stderr and 'corrupt' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_best_unknown_keeps_the_whole_run(inited_repo, wt_scratch):
    run_dir = steps_run(wt_scratch / 'run', (1, 2), age=2 * HOUR_AGO)
    make_checkpoint(run_dir, 'checkpoint-3', state='not json')  # the newest: its best is unknown
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert len(names(run_dir)) == 3
    assert 'best checkpoint unknown' in proc.stderr and '--no-keep-best' in proc.stderr
    ckpt('prune', '--keep', '1', '--no-keep-best', cwd=inited_repo)
    assert names(run_dir) == ['checkpoint-2', 'checkpoint-3']  # the corrupt one is still not judged


def test_missing_scratch_dir_prunes_nothing(inited_repo, wt_scratch):
    import shutil
    shutil.rmtree(wt_scratch)
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert 'nothing to prune' in proc.stdout


def test_unreadable_checkpoint_is_skipped(as_unprivileged):
    scratch_dir = as_unprivileged.sandbox / 'root' / 'proj-1' / 'exp-1'
    run_dir = steps_run(scratch_dir / 'run', (1, 2, 3))
    (run_dir / 'checkpoint-1' / 'sub').mkdir()
    (run_dir / 'checkpoint-1' / 'sub' / 'x').write_text('x')
    (scratch_dir / C.MANIFEST_NAME).write_text(json.dumps({'schema': 1, 'worktree_id': 'exp-1'}))
    (scratch_dir.parent / C.REPO_MANIFEST_NAME).write_text('{}')
    as_unprivileged.own(as_unprivileged.sandbox / 'root')
    os.utime(run_dir / 'checkpoint-1', (0, 0))
    (run_dir / 'checkpoint-1' / 'sub').chmod(0o000)
    code = ('import sys; from git_ckpt import retention, inventory; '
            'p = retention.plan(inventory.scan(sys.argv[1]), keep=1); n = retention.apply(p); '
            'print([c.name for c in p.deleted]); print(p.problems)')
    proc = as_unprivileged.run('-c', code, os.fspath(scratch_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "['checkpoint-2']"
    assert 'checkpoint-1: skipped' in proc.stdout
    assert names(run_dir) == ['checkpoint-1', 'checkpoint-3']


# --- issue 8, scenario 5: a checkpoint planted by someone else -------------------

def test_prune_leaves_a_checkpoint_of_another_user_alone(inited_repo, unprivileged_user):
    scratch = scratch_path(inited_repo)
    theirs = make_checkpoint(scratch / 'run1', 'checkpoint-1')
    make_checkpoint(scratch / 'run1', 'checkpoint-2')
    for path in (theirs, *theirs.iterdir()):
        os.chown(path, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    proc = ckpt('prune', '--keep', '1', '--grace', '0', cwd=inited_repo, check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert f'owned by {unprivileged_user.pw_name}, not you' in proc.stderr
    assert sorted(p.name for p in theirs.iterdir()) == ['model.safetensors', 'trainer_state.json']


def test_trash_left_by_a_killed_prune_is_deleted_by_the_next(inited_repo, wt_scratch):
    """kill -9 between renaming a checkpoint aside and the end of its deletion
    leaves a half-deleted trash dir (found by tests/faults/test_crash.py); the
    next prune (under the lock, so its owner is dead) deletes it."""
    run_dir = steps_run(wt_scratch / 'run', (1, 2, 3))
    trash = run_dir / f'{C.PRUNE_TRASH_PREFIX}checkpoint-0-4242'
    os.rename(make_checkpoint(run_dir, 'checkpoint-0'), trash)
    (trash / 'model.safetensors').unlink()  # half deleted
    other = wt_scratch / 'run' / 'notes'
    other.mkdir()
    proc = ckpt('prune', '--keep', '3', cwd=inited_repo)   # nothing to delete but the trash
    assert f'deleted run/{trash.name} (left by an interrupted prune)' in proc.stdout
    assert names(run_dir) == ['checkpoint-1', 'checkpoint-2', 'checkpoint-3', 'notes']
    assert ckpt('prune', '--keep', '3', '--dry-run', cwd=inited_repo).returncode == 0
