"""Parallel scans (inventory_workers.scan_many) and the click-free `status` fast path.

Real forks, real scratch trees: the parallel result must equal scanning one dir
after another, and a worker that dies must not change the result."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import ckpt, comparable_status_json, make_checkpoint, run
from git_ckpt import constants as C
from git_ckpt import inventory, inventory_workers, workers
from git_ckpt.__main__ import parse_path_args, parse_status_args
from git_ckpt.scratch import ensure_private_dir, write_json_atomic


def make_scratch_dirs(root: Path, count: int) -> list[Path]:
    dirs = []
    for i in range(count):
        scratch_dir = ensure_private_dir(root, Path('proj-0123abcd') / f'wt{i}-{i:08x}')
        write_json_atomic(scratch_dir / C.MANIFEST_NAME, {
            'schema': C.MANIFEST_SCHEMA, 'worktree_id': scratch_dir.name, 'worktree': f'/nowhere/wt{i}'})
        for step in range(1, i % 3 + 2):
            make_checkpoint(scratch_dir / 'run', f'checkpoint-{step * 100}',
                            state={'best_model_checkpoint': f'/x/run/checkpoint-{100}'})
        dirs.append(scratch_dir)
    (dirs[1] / 'run' / 'checkpoint-abc').mkdir()  # a problem, reported by whichever process scans it
    write_json_atomic(dirs[0].parent / C.REPO_MANIFEST_NAME, {'schema': C.MANIFEST_SCHEMA, 'repo': '/nowhere'})
    return dirs


def summary(inv: inventory.ScratchInventory) -> tuple:
    return (inv.scratch_dir, inv.size, inv.exists, inv.newest_mtime, tuple(inv.problems),
            tuple((r.path, r.size, r.best.path if r.best else None,
                   tuple((c.path, type(c.path), c.step, c.size, c.mtime, c.complete, c.inode)
                         for c in r.checkpoints)) for r in inv.runs))


def test_parallel_scan_equals_sequential_scan(hermetic, forks):
    dirs = make_scratch_dirs(hermetic.root, 7) + [hermetic.root / 'proj-0123abcd' / 'missing-00000000']
    parent = os.getpid()
    parallel = inventory_workers.scan_many(dirs)
    assert os.getpid() == parent and len(forks) == 1
    sequential = [inventory.scan(d) for d in dirs]  # warm now: the workers filled the caches
    assert [summary(i) for i in parallel] == [summary(i) for i in sequential]
    assert parallel[1].problems and 'step is not a number' in parallel[1].problems[0]
    assert not parallel[-1].exists
    # Every worker's cache file was written (one per scratch dir, by one process each).
    caches = hermetic.root / C.STATE_DIR / C.INVENTORY_CACHE_DIR / 'proj-0123abcd'
    assert sorted(p.name for p in caches.iterdir()) == sorted(f'{d.name}.json' for d in dirs[:-1])


def test_a_dead_worker_is_replaced_by_a_scan_here(hermetic, forks, monkeypatch):
    dirs = make_scratch_dirs(hermetic.root, 4)
    expected = [summary(inventory.scan(d, cache=False)) for d in dirs]
    parent = os.getpid()
    real_scan = inventory.scan

    def scan_or_die(scratch_dir, cache=None):
        if os.getpid() != parent:
            os._exit(9)  # the worker dies before sending anything
        return real_scan(scratch_dir, cache=False)

    monkeypatch.setattr(inventory, 'scan', scan_or_die)
    assert [summary(i) for i in inventory_workers.scan_many(dirs)] == expected
    assert len(forks) == 1


def test_no_fork_with_one_cpu_or_one_dir(hermetic, monkeypatch):
    dirs = make_scratch_dirs(hermetic.root, 3)
    monkeypatch.setattr(os, 'fork', lambda: pytest.fail('forked'))
    monkeypatch.setattr(workers, 'cpus', lambda: 1)
    assert len(inventory_workers.scan_many(dirs)) == 3
    monkeypatch.setattr(workers, 'cpus', lambda: 2)
    assert len(inventory_workers.scan_many(dirs[:1])) == 1


def test_status_fast_path_arguments():
    assert parse_status_args([]) == {'all_': False, 'as_json': False, 'cli_root': None}
    assert parse_status_args(['--json', '--all', '--root', '/r']) == {'all_': True, 'as_json': True,
                                                                      'cli_root': '/r'}
    assert parse_status_args(['--root=/r']) == {'all_': False, 'as_json': False, 'cli_root': '/r'}
    for args in (['-h'], ['--help'], ['--root'], ['--root', '--json'], ['--bogus'], ['x']):
        assert parse_status_args(args) is None  # click handles them
    assert parse_path_args(['--no-create']) == {'create': False, 'cli_root': None}
    assert parse_path_args(['--root', '/r']) == {'create': True, 'cli_root': '/r'}


def test_status_fast_path_output_equals_click_path(inited_repo):
    scratch_dir = Path(ckpt('path', cwd=inited_repo).stdout.strip())
    make_checkpoint(scratch_dir / 'run', 'checkpoint-5')
    make_checkpoint(scratch_dir / 'run', 'checkpoint-10')
    fast = ckpt('status', '--json', cwd=inited_repo)
    via_click = run([sys.executable, '-c', 'import sys; from git_ckpt.main import main; '
                     'sys.exit(main(["status", "--json"]))'], cwd=inited_repo)
    assert comparable_status_json(fast.stdout) == comparable_status_json(via_click.stdout)
    assert comparable_status_json(fast.stdout)['rows'][0]['checkpoints'] == 2
    table = ckpt('status', cwd=inited_repo).stdout
    assert 'checkpoint' not in table and ' 10 (' in table  # latest step and age
    # What the fast path does not know goes to click: its help, its one-line errors.
    assert '--json' in ckpt('status', '-h', cwd=inited_repo).stdout
    bad = ckpt('status', '--bogus', cwd=inited_repo, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith('git-ckpt: error:') and '--bogus' in bad.stderr
