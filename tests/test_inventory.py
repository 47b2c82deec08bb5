"""Inventory (issue 4, section 1): runs, checkpoints, sizes, best, cache, bad input.
Every test builds a real scratch tree on disk."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import HOUR_AGO, make_checkpoint, run, set_age
from git_ckpt import constants as C
from git_ckpt.disk_usage import dir_size
from git_ckpt.inventory import scan


def du_bytes(path: Path) -> int:
    return int(run(['du', '-s', '-B1', path]).stdout.split()[0])


def cache_file(scratch_dir: Path) -> Path:
    return scratch_dir.parents[1] / C.STATE_DIR / C.INVENTORY_CACHE_DIR / scratch_dir.parent.name / \
        f'{scratch_dir.name}.json'


def test_steps_are_integers_across_digit_lengths(managed_scratch):
    run_dir = managed_scratch / 'run1'
    for step in (10000, 9900, 100, 99, 1000):
        make_checkpoint(run_dir, f'checkpoint-{step}')
    inv = scan(managed_scratch)
    [found] = inv.runs
    assert found.path == run_dir
    assert [c.step for c in found.checkpoints] == [99, 100, 1000, 9900, 10000]
    assert found.latest.name == 'checkpoint-10000'
    assert inv.latest.name == 'checkpoint-10000'
    assert all(c.kind == 'hf' and c.complete and not c.in_progress for c in found.checkpoints)


def test_sizes_match_du_with_hard_links_once_and_symlinks_not_followed(managed_scratch, tmp_path):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'huge.bin').write_bytes(b'h' * 1_000_000)
    run_dir = managed_scratch / 'run1'
    a = make_checkpoint(run_dir, 'checkpoint-1', files={'model.safetensors': b'a' * 300_000,
                                                          'sub/extra.bin': b'e' * 50_000})
    b = make_checkpoint(run_dir, 'checkpoint-2', files={'model.safetensors': b'b' * 100_000})
    os.link(a / 'model.safetensors', b / 'shared.safetensors')   # hard link across checkpoints
    (b / 'outside-link').symlink_to(outside)                   # never followed
    (b / 'outside-file').symlink_to(outside / 'huge.bin')
    (run_dir / 'events.log').write_bytes(b'l' * 10_000)          # run content that is no checkpoint
    inv = scan(managed_scratch)
    assert inv.size == du_bytes(managed_scratch)
    assert dir_size(managed_scratch) == du_bytes(managed_scratch)
    assert dir_size(b) == du_bytes(b)  # within one checkpoint the linked file counts fully
    [found] = inv.runs
    assert found.size == du_bytes(run_dir)
    assert found.checkpoints[0].size == du_bytes(a)
    assert inv.size < 1_000_000  # the 1 MB file behind the symlink is not counted
    # Warm (cached) scan: same numbers.
    again = scan(managed_scratch)
    assert again.size == inv.size
    assert [c.size for c in again.checkpoints] == [c.size for c in inv.checkpoints]


def test_tmp_checkpoint_is_in_progress_and_incomplete_is_reported(managed_scratch):
    run_dir = managed_scratch / 'run'
    make_checkpoint(run_dir, 'checkpoint-10')
    make_checkpoint(run_dir, 'checkpoint-20', state=None)
    make_checkpoint(run_dir, 'tmp-checkpoint-30', state=None, age=1)
    inv = scan(managed_scratch)
    by_name = {c.name: c for c in inv.checkpoints}
    assert by_name['tmp-checkpoint-30'].in_progress and by_name['tmp-checkpoint-30'].step is None
    assert not by_name['checkpoint-20'].complete
    assert by_name['checkpoint-10'].complete
    assert [c.name for c in inv.runs[0].checkpoints][-1] == 'tmp-checkpoint-30'
    assert inv.in_progress()


def test_art_layout(managed_scratch):
    model = managed_scratch / '.art' / 'proj' / 'models' / 'agent'
    for step in (3, 12, 100):
        make_checkpoint(model / C.ART_CHECKPOINTS_DIR, f'{step:04d}',
                        files={'adapter_model.safetensors': b'x' * 5000, 'adapter_config.json': b'{}'},
                        state=None)
    (model / 'history.jsonl').write_text('{}\n')
    inv = scan(managed_scratch)
    [found] = inv.runs
    assert found.path == model
    assert [(c.kind, c.step, c.complete) for c in found.checkpoints] == [('art', 3, True), ('art', 12, True),
                                                                        ('art', 100, True)]
    assert found.size == du_bytes(model)


def test_best_is_matched_by_basename_under_another_prefix(managed_scratch):
    run_dir = managed_scratch / 'run'
    state = {'best_model_checkpoint': '/home/someone/old-output/checkpoint-200', 'global_step': 300}
    for step in (100, 200, 300):
        make_checkpoint(run_dir, f'checkpoint-{step}', state=state, age=HOUR_AGO - step)
    [found] = scan(managed_scratch).runs
    assert found.best is not None and found.best.name == 'checkpoint-200'
    assert found.best.path == run_dir / 'checkpoint-200'


def test_best_comes_from_the_most_recently_written_checkpoint(managed_scratch):
    """A reused output_dir: a stale run left checkpoint-500; a fresh run wrote
    checkpoint-100/200 since.  The fresh run's trainer_state.json decides."""
    run_dir = managed_scratch / 'out'
    make_checkpoint(run_dir, 'checkpoint-500', state={'best_model_checkpoint': 'out/checkpoint-500'},
                    age=10 * HOUR_AGO)
    make_checkpoint(run_dir, 'checkpoint-100', state={'best_model_checkpoint': 'out/checkpoint-100'},
                    age=2 * HOUR_AGO)
    make_checkpoint(run_dir, 'checkpoint-200', state={'best_model_checkpoint': 'out/checkpoint-100'},
                    age=HOUR_AGO)
    [found] = scan(managed_scratch).runs
    assert found.best.name == 'checkpoint-100'


def test_bad_input_is_reported_not_raised(managed_scratch):
    run_dir = managed_scratch / 'run'
    make_checkpoint(run_dir, 'checkpoint-10')
    make_checkpoint(run_dir, 'checkpoint-abc')
    make_checkpoint(run_dir, 'checkpoint-20', state='{"best_model_checkpoint": ')  # corrupt, newest
    make_checkpoint(run_dir, 'checkpoint-30', state=None, age=2 * HOUR_AGO)
    (run_dir / 'checkpoint-40').write_text('a file, not a dir')
    inv = scan(managed_scratch)
    [found] = inv.runs
    assert [c.name for c in found.checkpoints] == ['checkpoint-10', 'checkpoint-20', 'checkpoint-30']
    assert any('checkpoint-abc' in p and 'not a number' in p for p in inv.problems)
    bad = found.checkpoints[1]
    assert bad.state_error and 'corrupt' in bad.state_error
    assert any('checkpoint-20' in p and 'corrupt' in p for p in inv.problems)
    assert found.best is None and 'corrupt' in found.best_error
    assert not found.checkpoints[2].complete
    assert inv.size == du_bytes(managed_scratch)  # checkpoint-abc and the file still count


def test_symlinked_checkpoint_is_not_followed(managed_scratch, tmp_path):
    outside = make_checkpoint(tmp_path / 'elsewhere', 'checkpoint-999', files={'w': b'z' * 500_000})
    run_dir = managed_scratch / 'run'
    make_checkpoint(run_dir, 'checkpoint-1')
    (run_dir / 'checkpoint-999').symlink_to(outside)
    inv = scan(managed_scratch)
    assert [c.name for c in inv.checkpoints] == ['checkpoint-1']
    assert any('checkpoint-999' in p and 'symlink' in p for p in inv.problems)
    assert inv.size < 500_000


@pytest.mark.parametrize('seen_as', ['symlink', 'gone'])
def test_checkpoint_swapped_during_the_scan_is_never_walked_as_a_run(managed_scratch, tmp_path, monkeypatch,
                                                                     seen_as):
    """A checkpoint that is a symlink (or missing) when judged and a dir again
    by the time the rest of its parent is walked (another process renaming it
    aside and back) is not walked as a plain dir: its own checkpoint-* dirs
    would become a run, and prune --keep 1 would cut into a kept checkpoint."""
    from git_ckpt import inventory
    run_dir = managed_scratch / 'run'
    make_checkpoint(run_dir, 'checkpoint-1')
    swapped = make_checkpoint(run_dir, 'checkpoint-8')
    for inner in ('checkpoint-73', 'checkpoint-87'):
        make_checkpoint(swapped, inner)
    aside = tmp_path / 'aside'
    os.rename(swapped, aside)
    if seen_as == 'symlink':
        swapped.symlink_to(aside)
        real_judge = inventory._Scanner._hf_checkpoints
    else:
        os.rename(aside, swapped)
        real_judge = inventory._Scanner._checkpoints

    def judge_then_swap_back(self, fd, parent, *args):
        if parent != run_dir:
            return real_judge(self, fd, parent, *args)
        if seen_as == 'gone':
            os.rename(swapped, aside)  # gone just as it is measured
        result = real_judge(self, fd, parent, *args)
        if seen_as == 'symlink':
            swapped.unlink()
        os.rename(aside, swapped)      # ... and back before the run's other entries are walked
        return result
    monkeypatch.setattr(inventory._Scanner, '_hf_checkpoints' if seen_as == 'symlink' else '_checkpoints',
                        judge_then_swap_back)
    inv = scan(managed_scratch)
    assert os.path.isdir(swapped) and not os.path.islink(swapped)  # the swap did happen
    assert [r.path.name for r in inv.runs] == ['run']
    assert [c.name for c in inv.checkpoints] == ['checkpoint-1']
    assert any('checkpoint-8' in p for p in inv.problems)


def test_scratch_dir_that_vanished(hermetic):
    inv = scan(hermetic.root / 'proj-x' / 'gone')
    assert not inv.exists and inv.runs == [] and inv.size == 0
    assert 'does not exist' in inv.problems[0]


def test_scratch_dir_that_is_a_symlink_is_not_entered(hermetic, managed_scratch):
    make_checkpoint(managed_scratch / 'run', 'checkpoint-1')
    link = hermetic.root / 'proj-0123abcd' / 'link-0000'
    link.symlink_to(managed_scratch)
    inv = scan(link)
    assert inv.runs == [] and 'symlink' in inv.problems[0]


def test_unreadable_directory_is_reported(as_unprivileged):
    """Scanned as an unprivileged user: a checkpoint it may not read is
    reported (and flagged) while the rest is inventoried."""
    scratch_dir = as_unprivileged.sandbox / 'root' / 'proj-1' / 'exp-1'
    run_dir = scratch_dir / 'run'
    make_checkpoint(run_dir, 'checkpoint-1')
    make_checkpoint(run_dir, 'checkpoint-2', files={'sub/model.bin': b'm' * 1000})
    (scratch_dir / C.MANIFEST_NAME).write_text(json.dumps({'schema': 1, 'worktree_id': 'exp-1'}))
    as_unprivileged.own(as_unprivileged.sandbox / 'root')
    (run_dir / 'checkpoint-2' / 'sub').chmod(0o000)
    code = ('import json,sys; from git_ckpt.inventory import scan; i = scan(sys.argv[1], cache=False); '
            'print(json.dumps({"problems": i.problems, "ckpts": [[c.name, c.error] for c in i.checkpoints]}))')
    proc = as_unprivileged.run('-c', code, os.fspath(scratch_dir))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [name for name, _ in out['ckpts']] == ['checkpoint-1', 'checkpoint-2']
    assert out['ckpts'][0][1] is None
    assert 'Permission denied' in out['ckpts'][1][1]
    assert any('sub' in p and 'Permission denied' in p for p in out['problems'])


def test_cache_is_used_invalidated_and_lives_in_the_root(managed_scratch):
    run_dir = managed_scratch / 'run'
    ck = make_checkpoint(run_dir, 'checkpoint-1', files={'model.bin': b'1' * 10_000, 'sub/opt.bin': b'o' * 10})
    first = scan(managed_scratch)
    path = cache_file(managed_scratch)
    assert path.is_file()
    assert not any(C.INVENTORY_CACHE_DIR in p.parts for p in managed_scratch.rglob('*'))
    entries = json.loads(path.read_text())['entries']
    assert list(entries) == ['run/checkpoint-1']
    # A file added deep inside changes a directory's mtime: re-measured.
    (ck / 'sub' / 'more.bin').write_bytes(b'm' * 200_000)
    second = scan(managed_scratch)
    assert second.checkpoints[0].size > first.checkpoints[0].size
    assert second.checkpoints[0].size == du_bytes(ck)
    # A checkpoint replaced by another dir of the same name: new inode, re-measured.
    os.rename(ck, run_dir / 'old')
    make_checkpoint(run_dir, 'checkpoint-1', files={'tiny': b't'})
    third = scan(managed_scratch)
    assert third.checkpoints[0].size == du_bytes(run_dir / 'checkpoint-1')
    # Removed checkpoints drop out of the cache.
    import shutil
    shutil.rmtree(run_dir / 'checkpoint-1')
    make_checkpoint(run_dir, 'checkpoint-2')
    scan(managed_scratch)
    assert list(json.loads(path.read_text())['entries']) == ['run/checkpoint-2']


def test_in_progress_and_incomplete_are_never_cached(managed_scratch):
    run_dir = managed_scratch / 'run'
    make_checkpoint(run_dir, 'tmp-checkpoint-5', state=None)
    make_checkpoint(run_dir, 'checkpoint-4', state=None)
    scan(managed_scratch)
    entries = json.loads(cache_file(managed_scratch).read_text())['entries'] \
        if cache_file(managed_scratch).exists() else {}
    assert entries == {}


def test_trainer_state_read_while_being_written_is_not_cached(managed_scratch):
    # HF's TrainerState.save_to_json opens the file (empty), then writes it.  A
    # scan in between must not cache "corrupt": the write changes no directory
    # mtime, and the verdict stuck (prune skipped the checkpoint for good, and
    # the whole run while it was the newest: "best checkpoint unknown").
    run_dir = managed_scratch / 'run'
    make_checkpoint(run_dir, 'checkpoint-1')
    ck = make_checkpoint(run_dir, 'checkpoint-2', state=None)
    with open(ck / C.TRAINER_STATE_NAME, 'w', encoding='utf-8') as state:
        seen = scan(managed_scratch)
        assert seen.checkpoints[1].state_error == f'{C.TRAINER_STATE_NAME} is corrupt (not JSON)'
        assert seen.runs[0].best_error is not None  # nothing deleted on a guess meanwhile
        state.write(json.dumps({'global_step': 2, 'best_model_checkpoint': str(run_dir / 'checkpoint-1')}))
    inv = scan(managed_scratch)
    assert [c.state_error for c in inv.checkpoints] == [None, None]
    assert inv.runs[0].best_error is None and inv.runs[0].best.name == 'checkpoint-1'
    assert not [p for p in inv.problems if 'corrupt' in p]


@pytest.mark.parametrize('garbage', [b'{not json', b'[1, 2]', b'\x00\xff' * 10,
                                     b'{"schema": 1, "entries": {"run/checkpoint-1": {"dirs": "x"}}}',
                                     b'{"schema": 1, "entries": {"run/checkpoint-1": {"dirs": [[".", 1, 2, 3]], '
                                     b'"size": 5, "mtime": 1, "links": []}}}'])
def test_corrupt_cache_is_ignored_and_rebuilt(managed_scratch, garbage):
    ck = make_checkpoint(managed_scratch / 'run', 'checkpoint-1')
    scan(managed_scratch)
    path = cache_file(managed_scratch)
    path.write_bytes(garbage)
    inv = scan(managed_scratch)
    assert inv.checkpoints[0].size == du_bytes(ck)  # not the forged size 5
    data = json.loads(path.read_text())
    assert data['schema'] == C.INVENTORY_CACHE_SCHEMA and 'run/checkpoint-1' in data['entries']


def test_cache_skipped_without_a_managed_layout(tmp_path):
    plain = tmp_path / 'plain'
    make_checkpoint(plain / 'run', 'checkpoint-1')
    inv = scan(plain)
    assert [c.name for c in inv.checkpoints] == ['checkpoint-1']
    assert not (tmp_path / C.STATE_DIR).exists()


def test_nested_runs_are_all_found(managed_scratch):
    make_checkpoint(managed_scratch / 'sweep' / 'lr1e-4', 'checkpoint-10')
    make_checkpoint(managed_scratch / 'sweep' / 'lr3e-4', 'checkpoint-10')
    make_checkpoint(managed_scratch, 'checkpoint-5')  # the scratch dir itself used as output_dir
    inv = scan(managed_scratch)
    assert sorted(os.path.relpath(r.path, managed_scratch) for r in inv.runs) == \
        ['.', 'sweep/lr1e-4', 'sweep/lr3e-4']
    assert inv.size == du_bytes(managed_scratch)


@pytest.mark.slow
def test_real_tiny_trainer_run_is_inventoried(managed_scratch, tmp_path):
    pytest.importorskip('transformers', reason='the transformers extra is not installed')
    pytest.importorskip('torch', reason='torch is not installed')
    out = managed_scratch / 'tiny'
    script = f'''
import os, torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2, n_positions=32))
data = [{{"input_ids": torch.randint(0, 64, (16,)), "labels": torch.randint(0, 64, (16,))}} for _ in range(8)]
args = TrainingArguments(output_dir={os.fspath(out)!r}, max_steps=3, save_steps=1, per_device_train_batch_size=4,
                         eval_strategy="steps", eval_steps=1, load_best_model_at_end=True,
                         metric_for_best_model="loss", greater_is_better=False,
                         report_to=[], use_cpu=True, logging_steps=1, save_total_limit=None)
Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:4]).train()
'''
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'WANDB_DISABLED': 'true',
           'CUDA_VISIBLE_DEVICES': ''}
    proc = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    inv = scan(managed_scratch)
    [found] = inv.runs
    assert found.path == out
    assert [c.step for c in found.checkpoints] == [1, 2, 3]
    assert all(c.complete and c.kind == 'hf' and c.size > 0 for c in found.checkpoints)
    state = json.loads((out / 'checkpoint-3' / C.TRAINER_STATE_NAME).read_text())
    assert found.best is not None
    assert found.best.name == os.path.basename(state['best_model_checkpoint'])
    assert inv.size == du_bytes(managed_scratch)
    set_age(out, HOUR_AGO)
    from git_ckpt import retention
    plan = retention.plan(scan(managed_scratch), keep=1)
    kept = {c.name for c in found.checkpoints} - {c.name for c in plan.to_delete}
    assert {'checkpoint-3', found.best.name} <= kept


def test_git_ckpt_work_dirs_are_measured_but_never_runs(inited_repo):
    """A restore killed after moving an archive (same filesystem) into its
    staging dir leaves the only copy there; a copy in progress sits in a
    `.partial`.  Their checkpoints are not runs: prune must never delete them."""
    from conftest import ckpt, make_checkpoint, scratch_path, tree_digest
    from git_ckpt import constants as C
    scratch = scratch_path(inited_repo)
    staging = scratch / f'{C.RESTORE_STAGING_PREFIX}exp1-2026-01-01' / 'run1'
    partial = scratch / f'outputs{C.PARTIAL_SUFFIX}'
    for where in (staging, partial, scratch / 'run1'):
        for step in (1, 2, 3):
            make_checkpoint(where, f'checkpoint-{step}')
    (partial / C.TRANSFER_JOURNAL_NAME).write_text('{"source": "/x"}\n')
    before = {p: tree_digest(p) for p in (staging, partial)}
    inv = scan(scratch, cache=False)
    assert [r.path for r in inv.runs] == [scratch / 'run1']
    assert inv.size >= 3 * 3 * 20000   # all three measured
    ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert {p: tree_digest(p) for p in (staging, partial)} == before
    assert sorted(os.listdir(scratch / 'run1')) == ['checkpoint-3']
