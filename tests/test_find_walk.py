"""The cold inventory measured by GNU find (find_walk, inventory_cold) against
the Python walker (disk_usage.measure), on real trees: hard links, symlinks to
outside, nested and empty dirs, odd names, nanosecond mtimes, unreadable dirs
(as an unprivileged user), and the fallbacks: no find on PATH, a find that is
not GNU, a start point that is not a directory any more."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import comparable_status_json, make_checkpoint
from git_ckpt import find_walk, inventory, inventory_cold, inventory_workers, workers
from git_ckpt.disk_usage import Tree, dir_tree
from git_ckpt.inventory_cache import SizeCache

pytestmark = pytest.mark.skipif(shutil.which('find') is None, reason='no find on PATH')


python_tree = dir_tree  # the Python walker


def fields(tree: Tree) -> tuple:
    return tree.size, tree.mtime, tree.links, tree.dirs, tree.has_entries, tree.errors


def summary(inv: inventory.ScratchInventory) -> tuple:
    return (inv.scratch_dir, inv.size, inv.exists, inv.newest_mtime, tuple(inv.problems),
            tuple((r.path, r.size, r.best.path if r.best else None, r.best_error,
                   tuple((c.path, c.step, c.size, c.mtime, c.complete, c.in_progress, c.kind, c.error,
                          c.state_error, c.best_recorded, c.inode) for c in r.checkpoints)) for r in inv.runs))


def build_tree(scratch_dir: Path, outside: Path) -> list[Path]:
    outside.mkdir()
    (outside / 'huge.bin').write_bytes(b'h' * 300_000)
    run_dir = scratch_dir / 'run'
    a = make_checkpoint(run_dir, 'checkpoint-100', files={'model.safetensors': b'a' * 70_000,
                                                           'sub/deeper/extra.bin': b'e' * 9000,
                                                           'sub/empty/.keep': b''},
                        state={'best_model_checkpoint': '/elsewhere/run/checkpoint-100'})
    b = make_checkpoint(run_dir, 'checkpoint-200', files={'model.safetensors': b'b' * 40_000,
                                                           'name with spaces\nand a newline': b'n' * 5000})
    os.link(a / 'model.safetensors', b / 'shared.safetensors')      # across checkpoints
    os.link(b / 'model.safetensors', b / 'twice.safetensors')       # within one checkpoint
    (b / 'to-outside').symlink_to(outside)                          # never followed
    (b / 'to-huge').symlink_to(outside / 'huge.bin')
    (b / 'sub').mkdir()
    os.utime(b / 'model.safetensors', ns=(1_000_000_000, 4_102_444_800_123_456_789))  # 2100: newest, to the ns
    c = make_checkpoint(run_dir, 'tmp-checkpoint-300', state=None)
    d = make_checkpoint(scratch_dir / 'art', 'checkpoints/7', state=None)
    (scratch_dir / 'art' / 'checkpoints' / '8').mkdir()              # an empty ART checkpoint: incomplete
    e = make_checkpoint(run_dir / 'nested' / 'inner', 'checkpoint-1', state='{"not json')
    os.utime(e / 'model.safetensors', ns=(1, 499_999_999_999_999))   # 1985: a shorter %T@ stamp
    return [a, b, c, d, scratch_dir / 'art' / 'checkpoints' / '8', e]


@pytest.fixture
def tree(managed_scratch, tmp_path) -> list[Path]:
    return build_tree(managed_scratch, tmp_path / 'outside')


def test_find_measures_what_the_python_walker_measures(tree):
    for processes in (1, 2):
        measured = find_walk.start([os.fspath(p) for p in tree], processes)()
        assert sorted(measured) == sorted(os.fspath(p) for p in tree)
        for path in tree:
            assert fields(measured[os.fspath(path)]) == fields(python_tree(path)), path
    b = find_walk.start([os.fspath(tree[1])], 1)()[os.fspath(tree[1])]
    assert b.mtime == os.stat(tree[1] / 'model.safetensors').st_mtime  # the float os.stat gives
    assert len(b.links) == 2  # the file linked from checkpoint-100, and the one linked twice inside


def test_scan_with_find_equals_scan_in_python(managed_scratch, tree, monkeypatch):
    monkeypatch.setattr(inventory_cold, 'MIN_CHECKPOINTS', 1)
    expected = summary(inventory.scan(managed_scratch, cache=False, measured={}))
    measured = inventory_cold.measure([(managed_scratch, None)])
    assert len(measured) == len(tree)
    assert summary(inventory.scan(managed_scratch, cache=False, measured=measured)) == expected
    assert measured == {}  # every measurement was used, none walked again
    # The default path (cold cache, measured inside scan), then the warm one: same inventory.
    cold = inventory.scan(managed_scratch)
    assert summary(cold) == expected
    assert summary(inventory.scan(managed_scratch)) == expected
    # And through scan_many's workers, cold again.
    shutil.rmtree(managed_scratch.parents[1] / '.git-ckpt' / 'inventory')
    monkeypatch.setattr(workers, 'idle_cpus', lambda: 2.0)
    [many] = inventory_workers.scan_many([managed_scratch])
    assert summary(many) == expected


def test_a_change_after_find_is_measured_now_or_next_time(managed_scratch, tree, monkeypatch):
    """find's lstat of each dir (the cache key) comes before it reads the dir:
    a file added after find looked is in the next scan, never cached away; a
    checkpoint dir changed at its top, or replaced, is walked again at once."""
    monkeypatch.setattr(inventory_cold, 'MIN_CHECKPOINTS', 1)
    cache = SizeCache.for_scratch_dir(managed_scratch)
    measured = inventory_cold.measure([(managed_scratch, cache)])
    assert measured
    (tree[0] / 'sub' / 'deeper' / 'new.bin').write_bytes(b'n' * 8192)  # below the top: its mtime holds
    (tree[3] / 'new.bin').write_bytes(b'n' * 8192)                    # at the top
    first = {c.path: c for c in inventory.scan(managed_scratch, cache=cache, measured=measured).checkpoints}
    assert first[tree[3]].size == python_tree(tree[3]).size  # its top dir changed: walked again now
    assert first[tree[0]].size < python_tree(tree[0]).size   # find's view of a moment ago...
    [ckpt] = [c for c in inventory.scan(managed_scratch).checkpoints if c.path == tree[0]]
    assert ckpt.size == python_tree(tree[0]).size            # ...under a key that no longer holds
    # A checkpoint dir replaced after find looked (another inode) is walked right away.
    measured = inventory_cold.measure([(managed_scratch, None)])
    shutil.rmtree(tree[1])
    make_checkpoint(tree[1].parent, tree[1].name, files={'other.bin': b'o' * 12288})
    [ckpt] = [c for c in inventory.scan(managed_scratch, cache=False, measured=measured).checkpoints
              if c.path == tree[1]]
    assert ckpt.size == python_tree(tree[1]).size and ckpt.inode == os.stat(tree[1]).st_ino


def test_fallback_without_find_on_path(managed_scratch, tree, monkeypatch, tmp_path):
    monkeypatch.setattr(inventory_cold, 'MIN_CHECKPOINTS', 1)
    expected = summary(inventory.scan(managed_scratch, cache=False, measured={}))
    empty = tmp_path / 'empty-bin'
    empty.mkdir()
    monkeypatch.setenv('PATH', os.fspath(empty))
    assert find_walk.start([os.fspath(p) for p in tree], 2)() == {}
    assert inventory_cold.measure([(managed_scratch, None)]) == {}
    assert summary(inventory.scan(managed_scratch, cache=False)) == expected


@pytest.mark.parametrize('script', [
    'echo "find: unrecognized: -printf" >&2; exit 1',          # BusyBox
    'echo "find: -printf: unknown primary or operator" >&2; exit 1',  # BSD/macOS
    r'printf "D 0 1 2 3 4 %s\0garbage\0" "$1"; exit 0',         # nonsense on stdout
])
def test_fallback_with_a_find_that_is_not_gnu(managed_scratch, tree, monkeypatch, tmp_path, script):
    monkeypatch.setattr(inventory_cold, 'MIN_CHECKPOINTS', 1)
    expected = summary(inventory.scan(managed_scratch, cache=False, measured={}))
    bin_dir = tmp_path / 'fake-bin'
    bin_dir.mkdir()
    (bin_dir / 'find').write_text(f'#!/bin/sh\n{script}\n')
    (bin_dir / 'find').chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}:{os.environ["PATH"]}')
    assert find_walk.start([os.fspath(p) for p in tree], 1)() == {}
    assert summary(inventory.scan(managed_scratch, cache=False)) == expected


def test_start_point_no_longer_a_directory(tree, tmp_path):
    """A start point replaced by a symlink (or gone) between listing and find:
    it and the one before it (whose records it may have joined) are left out."""
    moved = tmp_path / 'moved'
    tree[1].rename(moved)
    tree[1].symlink_to(moved)
    shutil.rmtree(tree[3])
    measured = find_walk.start([os.fspath(p) for p in tree], 1)()
    assert sorted(measured) == sorted(os.fspath(p) for p in (tree[4], tree[5]))
    for path in (tree[4], tree[5]):
        assert fields(measured[os.fspath(path)]) == fields(python_tree(path))


def test_unreadable_directory_is_walked_in_python(as_unprivileged):
    """As an unprivileged user: find cannot read a subdir, so that checkpoint
    is left to the Python walker, which reports it in git-ckpt's own words;
    the readable checkpoints are find's."""
    scratch_dir = as_unprivileged.sandbox / 'root' / 'proj-1' / 'exp-1'
    run_dir = scratch_dir / 'run'
    make_checkpoint(run_dir, 'checkpoint-1')
    make_checkpoint(run_dir, 'checkpoint-2', files={'sub/model.bin': b'm' * 1000})
    make_checkpoint(run_dir, 'checkpoint-3')
    (scratch_dir / '.git-ckpt.json').write_text(json.dumps({'schema': 1, 'worktree_id': 'exp-1'}))
    as_unprivileged.own(as_unprivileged.sandbox / 'root')
    (run_dir / 'checkpoint-2' / 'sub').chmod(0o000)
    code = ('import json,sys; from git_ckpt import inventory, inventory_cold as ic; ic.MIN_CHECKPOINTS = 1; '
            'm = ic.measure([(sys.argv[1], None)]); keys = sorted(m); '
            'i = inventory.scan(sys.argv[1], cache=False, measured=m); '
            'print(json.dumps({"measured": keys, "problems": i.problems, '
            '"ckpts": [[c.name, c.error, c.complete] for c in i.checkpoints]}))')
    proc = as_unprivileged.run('-c', code, os.fspath(scratch_dir))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out['measured'] == [os.fspath(run_dir / 'checkpoint-1'), os.fspath(run_dir / 'checkpoint-3')]
    assert [c[0] for c in out['ckpts']] == ['checkpoint-1', 'checkpoint-2', 'checkpoint-3']
    assert out['ckpts'][0][1] is None and out['ckpts'][2][1] is None
    assert 'Permission denied' in out['ckpts'][1][1]
    assert out['problems'] == [f'cannot read {run_dir}/checkpoint-2/sub: Permission denied']


def test_cold_status_same_with_find_and_without(inited_repo, tmp_path):
    """`git ckpt status --json`, cold: with find (the wrapper logs that it ran),
    with a find that is not GNU, and with one process: the same document."""
    from conftest import add_worktree, ckpt, scratch_path
    other = add_worktree(inited_repo, tmp_path / 'wt2')
    for wt in (inited_repo, other):
        scratch_dir = scratch_path(wt)
        for step in range(1, 41):
            make_checkpoint(scratch_dir / 'run', f'checkpoint-{step * 10}', files={'model.bin': b'm' * 5000})
    os.link(scratch_path(other) / 'run' / 'checkpoint-10' / 'model.bin',
            scratch_path(other) / 'run' / 'checkpoint-20' / 'linked.bin')
    cache_dir = scratch_path(inited_repo).parents[1] / '.git-ckpt' / 'inventory'
    log = tmp_path / 'find.log'
    logging, failing = tmp_path / 'logging-bin', tmp_path / 'failing-bin'
    for bin_dir, script in ((logging, f'echo "$#" >> {log}; exec {shutil.which("find")} "$@"'),
                            (failing, 'echo "find: unrecognized: -printf" >&2; exit 1')):
        bin_dir.mkdir()
        (bin_dir / 'find').write_text(f'#!/bin/sh\n{script}\n')
        (bin_dir / 'find').chmod(0o755)

    def cold_status(bin_dir: Path, **env: str) -> dict:
        shutil.rmtree(cache_dir, ignore_errors=True)
        environ = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', **env)
        return comparable_status_json(ckpt('status', '--json', cwd=inited_repo, env=environ).stdout)

    with_find = cold_status(logging)
    assert log.read_text().strip()  # find ran
    assert [row['checkpoints'] for row in with_find['rows']] == [40, 40]
    assert cold_status(failing) == with_find
    assert cold_status(logging, GIT_CKPT_WORKERS='1') == with_find
    assert comparable_status_json(ckpt('status', '--json', cwd=inited_repo).stdout) == with_find  # warm


def test_big_trainer_state_is_read_whole(managed_scratch, monkeypatch):
    """trainer_state.json is read 64 KiB at a time: one of 300 KB (a long
    log_history) still parses, on the find path and the Python one."""
    state = {'best_model_checkpoint': 'out/checkpoint-2',
             'log_history': [{'step': i, 'loss': 1.0 / (i + 1)} for i in range(12000)]}
    for step in (1, 2):
        make_checkpoint(managed_scratch / 'run', f'checkpoint-{step}', state=state)
    assert (managed_scratch / 'run' / 'checkpoint-1' / 'trainer_state.json').stat().st_size > 300_000
    monkeypatch.setattr(inventory_cold, 'MIN_CHECKPOINTS', 1)
    for measured in ({}, inventory_cold.measure([(managed_scratch, None)])):
        [run] = inventory.scan(managed_scratch, cache=False, measured=measured).runs
        assert run.best is not None and run.best.name == 'checkpoint-2'
        assert all(c.complete and c.state_error is None for c in run.checkpoints)


def test_more_start_points_than_an_argv_holds(tree, monkeypatch):
    """Start points beyond one argv's budget go to more finds, in rounds of
    `processes`: every checkpoint is still measured, and measured alike."""
    monkeypatch.setattr(find_walk, 'argv_budget', lambda: 300)
    for processes in (1, 2):
        measured = find_walk.start([os.fspath(p) for p in tree], processes)()
        assert sorted(measured) == sorted(os.fspath(p) for p in tree)
        for path in tree:
            assert fields(measured[os.fspath(path)]) == fields(python_tree(path))


@pytest.mark.timeout(60)
def test_trainer_state_that_is_a_fifo_does_not_hang(managed_scratch, monkeypatch):
    """A FIFO named trainer_state.json (bad input) is reported as corrupt on
    both paths; opening it for reading used to wait for a writer forever."""
    make_checkpoint(managed_scratch / 'run', 'checkpoint-1', state=None)
    os.mkfifo(managed_scratch / 'run' / 'checkpoint-1' / 'trainer_state.json')
    monkeypatch.setattr(inventory_cold, 'MIN_CHECKPOINTS', 1)
    for measured in ({}, inventory_cold.measure([(managed_scratch, None)])):
        [ckpt] = inventory.scan(managed_scratch, cache=False, measured=measured).checkpoints
        assert not ckpt.complete or ckpt.state_error
        assert ckpt.state_error and 'corrupt' in ckpt.state_error
