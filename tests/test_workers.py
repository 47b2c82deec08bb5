"""workers.forked_map and the parallel delete of big prunes (retention.apply).

Real forks on real trees: a parallel prune must decide and delete exactly what
a sequential one does, with the same safety checks per checkpoint, and a
worker that dies must cost nothing but what it was doing."""
from __future__ import annotations

import os
from pathlib import Path

from conftest import make_checkpoint, set_age, tree_digest
from git_ckpt import retention, workers
from git_ckpt.inventory import scan

HOUR = 3600.0


def square_in_child(parent: int):
    def fn(x: int) -> tuple[int, bool]:
        return x * x, os.getpid() != parent
    return fn


def test_forked_map_keeps_order_and_reports_every_result(forks):
    seen = []
    results = workers.forked_map(square_in_child(os.getpid()), list(range(9)), 3,
                                 on_result=lambda i, r: seen.append(i))
    assert [r for r, _ in results] == [x * x for x in range(9)]
    assert sorted(seen) == list(range(9))
    assert {i for i, (_, in_child) in enumerate(results) if in_child} == {0, 1, 3, 4, 6, 7}
    assert len(forks) == 2


def test_forked_map_runs_here_what_a_dead_worker_did_not_report(forks):
    parent = os.getpid()

    def fn(x: int) -> tuple[int, bool]:
        if os.getpid() != parent and x == 4:
            os._exit(9)  # dies after reporting 0 and 2 (items 4 and 6 never reach it)
        return x * x, os.getpid() != parent

    results = workers.forked_map(fn, list(range(8)), 2)
    assert [r for r, _ in results] == [x * x for x in range(8)]
    assert [i for i, (_, in_child) in enumerate(results) if in_child] == [0, 2]


def test_no_fork_when_threads_run(monkeypatch):
    import threading
    monkeypatch.setattr(workers, 'cpus', lambda: 2)
    monkeypatch.setattr(workers, 'idle_cpus', lambda: 2.0)
    assert workers.worker_count(100) == 2
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert workers.worker_count(100) == 1
    finally:
        stop.set()
        thread.join()
    assert workers.worker_count(100, min_per_worker=60) == 1
    monkeypatch.setenv('GIT_CKPT_WORKERS', '1')
    assert workers.worker_count(100) == 1
    monkeypatch.setenv('GIT_CKPT_WORKERS', 'lots')  # not a number: the default
    assert workers.worker_count(100) == 2
    monkeypatch.setattr(workers, 'idle_cpus', lambda: 1.4)  # the other core is mostly busy
    assert workers.worker_count(100) == 1


def big_run(scratch_dir: Path, count: int) -> Path:
    run_dir = scratch_dir / 'run'
    for step in range(1, count + 1):
        make_checkpoint(run_dir, f'checkpoint-{step}', age=HOUR + 10 * (count - step))
    return run_dir


def test_parallel_prune_deletes_exactly_the_plan_and_follows_no_symlink(managed_scratch, tmp_path, forks):
    outside = tmp_path / 'outside'
    make_checkpoint(outside, 'checkpoint-7')
    digest = tree_digest(outside)
    run_dir = big_run(managed_scratch, 40)
    (run_dir / 'checkpoint-3' / 'linked-dir').symlink_to(outside)
    set_age(run_dir / 'checkpoint-3', HOUR + 10 * 40)
    plan = retention.plan(scan(managed_scratch), keep=2)
    assert len(plan.to_delete) == 38
    # After planning: one checkpoint swapped for a link to outside, one replaced by a new dir.
    os.rename(run_dir / 'checkpoint-10', tmp_path / 'moved-away')
    (run_dir / 'checkpoint-10').symlink_to(outside / 'checkpoint-7')
    os.rename(run_dir / 'checkpoint-20', run_dir / 'old-20')
    make_checkpoint(run_dir, 'checkpoint-20')
    freed = retention.apply(plan)
    assert len(forks) == 1  # 38 checkpoints, 2 CPUs: one worker besides this process
    assert sorted(os.listdir(run_dir)) == ['checkpoint-10', 'checkpoint-20', 'checkpoint-39', 'checkpoint-40',
                                           'old-20']
    assert [c.name for c in plan.deleted] == [c.name for c in plan.to_delete
                                              if c.name not in ('checkpoint-10', 'checkpoint-20')]
    assert freed == sum(c.size for c in plan.deleted)
    assert len(plan.failures) == 2
    assert 'no longer a directory' in plan.failures[0] and 'replaced' in plan.failures[1]
    assert tree_digest(outside) == digest
    assert (run_dir / 'checkpoint-20' / 'trainer_state.json').is_file()


def test_a_worker_killed_mid_prune_leaves_only_what_it_was_deleting(managed_scratch, forks, monkeypatch):
    run_dir = big_run(managed_scratch, 20)
    plan = retention.plan(scan(managed_scratch), keep=1)
    parent = os.getpid()
    real_rmtree = retention.rmtree_at

    def rmtree_or_die(parent_fd, name):
        if os.getpid() != parent and '-7-' in name:
            os._exit(9)  # killed after renaming checkpoint-7 aside, before deleting it
        return real_rmtree(parent_fd, name)

    monkeypatch.setattr(retention, 'rmtree_at', rmtree_or_die)
    retention.apply(plan)
    left = sorted(os.listdir(run_dir))
    assert [n for n in left if n.startswith('checkpoint-')] == ['checkpoint-20']
    assert len([n for n in left if '-deleting-checkpoint-7-' in n]) == 1  # its trash, named as such
    assert [f.split(':')[0] for f in plan.failures] == [os.fspath(run_dir / 'checkpoint-7')]
    assert len(plan.deleted) == 18


def test_the_hook_path_part_imports_no_pickle_signal_or_typing():
    """The commit guard uses worker counts and fork_child from this module."""
    import subprocess
    import sys
    code = ('import sys; from git_ckpt.workers import cpus, fork_child, max_workers, may_fork; '
            'print(sorted(m for m in ("pickle", "signal", "typing") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-S', '-c', code], capture_output=True, text=True,
                         env={**os.environ, 'PYTHONPATH': str(Path(workers.__file__).parents[1])})
    assert out.stdout.strip() == '[]', out.stderr
