"""setup(keep=N) and git_ckpt.prune(keep=N): real Trainer runs (examples/train_tiny.py) in real
worktrees, pruned with the `git ckpt prune` policy; no save_total_limit anywhere here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import add_worktree, ckpt, run, scratch_path
from test_hf import (torchrun, FAKE_TRAINING_ARGS, git_ckpt_lines, hf_env, needs_transformers, python,  # noqa: F401
                     steps, summaries, train)


def _warnings(proc) -> list[str]:
    return [line for line in git_ckpt_lines(proc.stderr) if 'warning' in line]


# --- setup(keep=N) during training --------------------------------------------------------------

@needs_transformers
@pytest.mark.slow
def test_keep_leaves_the_two_newest_and_resume_still_works(hf_env, repo):
    summary, proc = train(repo, '--keep', '2', '--save-steps', '1')
    out = scratch_path(repo) / 'out'
    assert summary['output_dir'] == os.fspath(out)
    assert summary['checkpoints'] == ['checkpoint-7', 'checkpoint-8']  # seen by the script itself
    assert steps(out) == [7, 8]
    assert not [p for p in out.iterdir() if not p.name.startswith('checkpoint-')]  # no trash left
    assert _warnings(proc) == []
    # resume_from_checkpoint=True finds the newest kept checkpoint and keeps pruning.
    resumed, _ = train(repo, '--keep', '2', '--save-steps', '1', '--resume', '--max-steps', '11')
    assert resumed['start_step'] == 8 and resumed['global_step'] == 11
    assert steps(out) == [10, 11]


@needs_transformers
@pytest.mark.slow
def test_keep_spares_the_best_checkpoint(hf_env, repo):
    # best = highest eval loss = the first checkpoint: keep=2 must spare it as rotation does.
    summary, _ = train(repo, '--keep', '2', '--save-steps', '1', '--best')
    out = Path(summary['output_dir'])
    assert summary['best_model_checkpoint'] == os.fspath(out / 'checkpoint-1')
    assert steps(out) == [1, 7, 8]


@needs_transformers
@pytest.mark.slow
def test_keep_works_when_transformers_trainer_was_imported_first(hf_env, repo):
    summary, _ = train(repo, '--keep', '2', '--save-steps', '2', before_import=True)
    assert steps(Path(summary['output_dir'])) == [6, 8]


@needs_transformers
@pytest.mark.slow
def test_keep_prunes_only_its_own_run(hf_env, repo):
    train(repo, '--output-dir', 'runs/a', '--max-steps', '4', '--save-steps', '1')
    train(repo, '--output-dir', 'runs/b', '--keep', '1', '--save-steps', '2')
    scratch = scratch_path(repo)
    assert steps(scratch / 'runs' / 'a') == [1, 2, 3, 4]  # another run: untouched
    assert steps(scratch / 'runs' / 'b') == [8]


@needs_transformers
@pytest.mark.slow
def test_keep_outside_scratch_warns_once_and_training_finishes(hf_env, repo, tmp_path):
    elsewhere = tmp_path / 'elsewhere'  # an absolute output_dir outside the worktree: left alone
    summary, proc = train(repo, '--keep', '2', '--save-steps', '2', '--output-dir', elsewhere)
    assert summary['global_step'] == 8
    assert steps(elsewhere) == [2, 4, 6, 8]  # not managed by git-ckpt: nothing deleted
    warnings = _warnings(proc)
    assert len(warnings) == 1, warnings  # once, not at each of the 4 saves
    assert 'setup(keep=2)' in warnings[0] and 'not pruned this time' in warnings[0]
    assert 'not inside a scratch dir managed by git-ckpt' in warnings[0]


@needs_transformers
@pytest.mark.slow
def test_keep_while_another_command_holds_the_lock(hf_env, repo):
    scratch = Path(ckpt('path', cwd=repo).stdout.strip())
    holder = subprocess.Popen(
        [sys.executable, '-c', textwrap.dedent('''
            import sys, time
            from pathlib import Path
            from git_ckpt.lock import scratch_lock
            with scratch_lock(Path(sys.argv[1]), 'archive'):
                print('held', flush=True)
                time.sleep(300)
            '''), scratch], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        summary, proc = train(repo, '--keep', '2', '--save-steps', '2')
    finally:
        holder.kill()
        holder.wait()
    assert summary['global_step'] == 8
    out = scratch / 'out'
    assert steps(out) == [2, 4, 6, 8]  # skipped, never deleted without the lock
    warnings = _warnings(proc)
    assert len(warnings) == 1 and 'is in use by `git ckpt archive`' in warnings[0]
    # Once the lock is free, the Python API prunes it like the CLI would.
    done = python(f'''
        import git_ckpt
        r = git_ckpt.prune(keep=2, path={os.fspath(out)!r}, grace=0)
        print(sorted(p.name for p in r.deleted), r.bytes_freed > 0, r.failures)
        ''', cwd=repo)
    assert done.stdout.strip() == "['checkpoint-2', 'checkpoint-4'] True []"
    assert steps(out) == [6, 8]


@needs_transformers
@pytest.mark.slow
def test_keep_under_torchrun_prunes_once_on_rank_0(hf_env, repo):
    proc = torchrun('--keep', '2', '--save-steps', '2', cwd=repo)
    rank0, rank1 = summaries(proc)
    assert rank0['global_step'] == rank1['global_step'] == 8
    assert steps(scratch_path(repo) / 'out') == [6, 8]
    assert _warnings(proc) == [], proc.stderr  # rank 0 pruned without trouble (rank 1 does not save)


# --- git_ckpt.prune() is `git ckpt prune` -------------------------------------------------------

PRUNE_AND_REPORT = '''
import json, sys, git_ckpt
r = git_ckpt.prune(keep=1, grace=0, dry_run=sys.argv[1] == 'dry')
scratch = git_ckpt.scratch_dir()
rel = lambda paths: sorted(str(p.relative_to(scratch)) for p in paths)
print(json.dumps({'deleted': rel(r.deleted), 'kept': rel(r.kept), 'bytes': r.bytes_freed,
                  'dry_run': r.dry_run, 'failures': r.failures}))
'''


def _remaining(scratch: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, name), scratch)
                  for d, names, _ in os.walk(scratch) for name in names if name.startswith('checkpoint-'))


def _cli_lines(proc, prefix: str) -> list[str]:
    """The paths in the CLI's `<prefix> PATH (size): ...` lines."""
    return sorted(line[len(prefix):].split()[0] for line in proc.stderr.splitlines() + proc.stdout.splitlines()
                  if line.startswith(prefix + ' '))


@needs_transformers
@pytest.mark.slow
def test_python_prune_equals_the_cli(hf_env, repo, tmp_path):
    train(repo, '--max-steps', '8', '--save-steps', '2')
    train(repo, '--output-dir', 'runs/b', '--max-steps', '6', '--save-steps', '2', '--seed', '1')
    a = scratch_path(repo)
    # The same tree in a second worktree's scratch dir (mtimes preserved): one is pruned by
    # the CLI, the other from Python.
    other = add_worktree(repo, tmp_path / 'other')
    b = Path(ckpt('path', cwd=other).stdout.strip())
    run(['cp', '-a', a / 'out', a / 'runs', b])
    assert _remaining(a) == _remaining(b) and len(_remaining(a)) == 7

    cli_dry = ckpt('prune', '--keep', '1', '--grace', '0', '--dry-run', cwd=repo)
    py_dry = json.loads(run([sys.executable, '-c', PRUNE_AND_REPORT, 'dry'], cwd=other).stdout)
    assert py_dry['dry_run'] and py_dry['deleted'] == _cli_lines(cli_dry, 'would delete')
    assert _remaining(b) == _remaining(a)  # a dry run deletes nothing

    cli = ckpt('prune', '--keep', '1', '--grace', '0', cwd=repo)
    py = json.loads(run([sys.executable, '-c', PRUNE_AND_REPORT, 'real'], cwd=other).stdout)
    assert py['deleted'] == _cli_lines(cli, 'deleted') == py_dry['deleted']
    assert py['deleted'] == ['out/checkpoint-2', 'out/checkpoint-4', 'out/checkpoint-6',
                             'runs/b/checkpoint-2', 'runs/b/checkpoint-4']
    assert _remaining(a) == _remaining(b) == ['out/checkpoint-8', 'runs/b/checkpoint-6']
    assert py['kept'] == _remaining(b) and py['failures'] == []
    from git_ckpt.output import human_size
    assert f'freed {human_size(py["bytes"])}' in cli.stderr + cli.stdout and py['bytes'] > 0


def test_python_prune_is_light_and_refuses_bad_keep(hf_env, repo):
    light = python('''
        import sys, git_ckpt
        r = git_ckpt.prune(keep=1)  # no scratch dir yet: nothing to do
        print(r.deleted, r.bytes_freed, [m for m in ('click', 'rich', 'transformers', 'torch') if m in sys.modules])
        ''', cwd=repo)
    assert light.stdout.strip() == '[] 0 []'
    for bad in ('0', '-1', 'True', '1.5'):
        proc = python(f'import git_ckpt; git_ckpt.prune(keep={bad})', cwd=repo, check=False)
        assert proc.returncode != 0
        assert f'GitCkptError: keep must be an integer of at least 1 (got {bad})' in proc.stderr


def test_setup_refuses_keep_below_one(hf_env, repo):
    for bad in ('0', '-2', 'True'):
        proc = python(f'import git_ckpt; git_ckpt.setup(keep={bad})', cwd=repo, check=False)
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert f'GitCkptError: setup(keep=N) needs an integer N of at least 1 (got {bad})' in last
    assert python('import git_ckpt; git_ckpt.setup(keep=1, quiet=True)', cwd=repo).returncode == 0


# --- unsupported transformers --------------------------------------------------------------------

def test_keep_with_a_trainer_module_git_ckpt_does_not_know_warns(hf_env, repo, tmp_path):
    # A stand-in transformers whose trainer has no DEFAULT_CALLBACKS list: warn, never crash.
    fake = tmp_path / 'fake' / 'transformers'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text("__version__ = '5.99.0'\n")
    (fake / 'training_args.py').write_text(FAKE_TRAINING_ARGS)
    (fake / 'trainer.py').write_text('class TrainerCallback:\n    pass\n')
    env = dict(os.environ, PYTHONPATH=os.fspath(fake.parent))
    proc = python('''
        import git_ckpt; git_ckpt.setup(keep=2)
        import transformers.trainer
        from transformers.training_args import TrainingArguments
        print(TrainingArguments(output_dir="out").output_dir)
        ''', cwd=repo, env=env)
    assert proc.stdout.strip() == os.fspath(scratch_path(repo) / 'out')  # the output_dir part works
    warnings = _warnings(proc)
    assert len(warnings) == 1
    assert 'transformers 5.99.0 has no DEFAULT_CALLBACKS list' in warnings[0]
    assert 'setup(keep=N) cannot prune after saves; set save_total_limit=N instead' in warnings[0]
