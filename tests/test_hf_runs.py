"""Run dirs below an output_dir (hyperparameter search) and GIT_CKPT_DIR dirs outside any
repository: what setup(keep=N), `git ckpt prune` and git_ckpt.prune() do with them.

transformers' hyperparameter_search keeps `args.output_dir` as given and saves each trial's
checkpoints under `<output_dir>/run-<trial>/checkpoint-*` (Trainer._get_output_dir)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import assert_error, ckpt, scratch_path
from test_hf import git_ckpt_lines, hf_env, needs_transformers, python, steps, train  # noqa: F401

try:
    import optuna  # noqa: F401
    HAVE_OPTUNA = True
except ImportError:
    HAVE_OPTUNA = False

# A real Trainer.hyperparameter_search (optuna backend, 2 trials of 4 steps) of the tiny GPT-2
# from examples/train_tiny.py, with setup(keep=1) and no save_total_limit.
SEARCH = '''
import json, os, sys
import git_ckpt
git_ckpt.setup(keep=1)
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

config = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
tokens = torch.randint(0, 64, (32, 16), generator=torch.Generator().manual_seed(0))
data = [{'input_ids': t, 'labels': t} for t in tokens]
seen = []

class Seen(TrainerCallback):
    """What each trial's run dirs hold right after each save (after keep= pruned)."""
    def on_save(self, args, state, control, **kwargs):
        seen.append({d: sorted(os.listdir(os.path.join(args.output_dir, d)))
                     for d in sorted(os.listdir(args.output_dir))})

def model_init(trial=None):
    torch.manual_seed(0)
    return GPT2LMHeadModel(config)

args = TrainingArguments(output_dir='search', max_steps=4, save_steps=1, per_device_train_batch_size=4,
                         logging_steps=1000, report_to=[], use_cpu=True, disable_tqdm=True)
trainer = Trainer(model_init=model_init, args=args, train_dataset=data, eval_dataset=data[:8],
                  callbacks=[Seen()])
trainer.hyperparameter_search(
    direction='minimize', backend='optuna', n_trials=2,
    hp_space=lambda trial: {'learning_rate': trial.suggest_float('learning_rate', 1e-3, 1e-2, log=True)})
print(json.dumps({'output_dir': trainer.args.output_dir, 'seen': seen}))
'''


@needs_transformers
@pytest.mark.slow
@pytest.mark.skipif(not HAVE_OPTUNA, reason='needs optuna (the test extra installs it)')
def test_keep_prunes_each_hyperparameter_search_trial_in_its_run_dir(hf_env, repo):
    proc = python(SEARCH, cwd=repo)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    search = scratch_path(repo) / 'search'
    assert summary['output_dir'] == os.fspath(search)  # args.output_dir is the base, not the trial's
    assert sorted(p.name for p in search.iterdir()) == ['run-0', 'run-1']
    assert steps(search / 'run-0') == [4]
    assert steps(search / 'run-1') == [4]
    # After every save the trial's own run dir held only its newest checkpoint, and the
    # finished trial's run dir was left as it was.
    ckpts = [{run: [n for n in names if n.startswith('checkpoint-')] for run, names in s.items()}
             for s in summary['seen']]
    assert ckpts == [{'run-0': [f'checkpoint-{i}']} for i in range(1, 5)] + [
        {'run-0': ['checkpoint-4'], 'run-1': [f'checkpoint-{i}']} for i in range(1, 5)]
    assert [line for line in git_ckpt_lines(proc.stderr) if 'warning' in line] == []


def _trial_layout(repo: Path) -> Path:
    """What a search leaves: <scratch>/search/run-N/checkpoint-*, made by real Trainer runs whose
    output_dir is the run dir (the paths transformers uses); run-1 is the trial still running."""
    train(repo, '--output-dir', 'search/run-0', '--max-steps', '4', '--save-steps', '1')
    train(repo, '--output-dir', 'search/run-1', '--max-steps', '4', '--save-steps', '1')
    search = scratch_path(repo) / 'search'
    (search / 'run-1' / 'tmp-checkpoint-5').mkdir()  # its save in progress
    (search / 'run-1' / 'tmp-checkpoint-5' / 'model.safetensors').write_bytes(b'x' * 4096)
    return search


@needs_transformers
@pytest.mark.slow
def test_cli_prune_keeps_n_per_run_dir_and_the_running_trials_save(hf_env, repo):
    search = _trial_layout(repo)
    ckpt('prune', '--keep', '2', '--grace', '0', 'search', cwd=repo)
    assert steps(search / 'run-0') == [3, 4]
    assert steps(search / 'run-1') == [3, 4]
    assert (search / 'run-1' / 'tmp-checkpoint-5' / 'model.safetensors').stat().st_size == 4096
    # The Python API, on the whole scratch dir: the same policy, per run dir.
    done = python('''
        import git_ckpt
        r = git_ckpt.prune(keep=1, grace=0)
        print(sorted(str(p.relative_to(p.parents[2])) for p in r.deleted), r.failures)
        ''', cwd=repo)
    assert done.stdout.strip() == "['search/run-0/checkpoint-3', 'search/run-1/checkpoint-3'] []"
    assert (search / 'run-1' / 'tmp-checkpoint-5').is_dir()


@needs_transformers
@pytest.mark.slow
def test_cli_prune_grace_spares_the_running_trial(hf_env, repo):
    search = _trial_layout(repo)
    old = time.time() - 3600
    for ckpt_dir in (search / 'run-0').iterdir():  # the finished trial: an hour old
        for path in [*ckpt_dir.rglob('*'), ckpt_dir]:
            os.utime(path, (old, old), follow_symlinks=False)
    ckpt('prune', '--keep', '1', 'search', cwd=repo)  # default grace (300 s)
    assert steps(search / 'run-0') == [4]
    assert steps(search / 'run-1') == [1, 2, 3, 4]  # written moments ago: a running trial
    assert (search / 'run-1' / 'tmp-checkpoint-5').is_dir()


# --- GIT_CKPT_DIR outside any repository ----------------------------------------------------------

def _setup_in(cwd: Path, env_dir: Path, keep: str = 'None'):
    env = dict(os.environ, GIT_CKPT_DIR=os.fspath(env_dir), PATH='/nonexistent')  # no git at all
    return python(f'import git_ckpt; print(git_ckpt.setup(keep={keep}))', cwd=cwd, env=env)


def _fake_run(directory: Path, steps_: list[int]) -> None:
    """Complete HF checkpoints (trainer_state.json is what marks one complete)."""
    for step in steps_:
        d = directory / f'checkpoint-{step}'
        d.mkdir(parents=True)
        (d / 'model.safetensors').write_bytes(b'w' * 1024)
        (d / 'trainer_state.json').write_text(json.dumps({'global_step': step}))


def test_setup_marks_a_git_ckpt_dir_it_creates_and_prune_manages_it(hermetic, tmp_path):
    job = tmp_path / 'job'
    job.mkdir()
    env_dir = tmp_path / 'slurm' / 'ckpt'
    assert _setup_in(job, env_dir).stdout.strip() == os.fspath(env_dir)
    manifest = json.loads((env_dir / '.git-ckpt.json').read_text())
    assert manifest['standalone'] is True and manifest['dir'] == os.fspath(env_dir)
    assert oct(env_dir.stat().st_mode & 0o777) == '0o700'
    _fake_run(env_dir / 'out', [1, 2, 3])
    again = _setup_in(job, env_dir)  # idempotent: the manifest is kept as is
    assert again.returncode == 0 and json.loads((env_dir / '.git-ckpt.json').read_text()) == manifest
    proc = ckpt('prune', '--keep', '1', '--grace', '0', cwd=job, env=dict(os.environ, GIT_CKPT_DIR=os.fspath(env_dir)))
    assert steps(env_dir / 'out') == [3]
    assert 'deleted out/checkpoint-1' in proc.stdout
    # Its lock lives in the dir itself (no scratch root above it), and nothing was created
    # in the directories above the one the user named.
    assert (env_dir / '.git-ckpt-state').is_dir()
    assert sorted(p.name for p in (tmp_path / 'slurm').iterdir()) == ['ckpt']
    assert not (tmp_path / '.git-ckpt').exists()


def test_setup_marks_an_empty_git_ckpt_dir_the_job_script_made(hermetic, tmp_path):
    env_dir = tmp_path / 'made-by-sbatch'
    env_dir.mkdir()
    _setup_in(tmp_path, env_dir)
    assert json.loads((env_dir / '.git-ckpt.json').read_text())['standalone'] is True


def test_setup_never_marks_a_git_ckpt_dir_that_already_holds_files(hermetic, tmp_path):
    env_dir = tmp_path / 'my-old-checkpoints'
    _fake_run(env_dir / 'out', [1, 2, 3])
    proc = _setup_in(tmp_path, env_dir)
    assert proc.returncode == 0  # training may use it, as before
    assert not (env_dir / '.git-ckpt.json').exists()
    refused = ckpt('prune', '--keep', '1', '--grace', '0', cwd=tmp_path,
                   env=dict(os.environ, GIT_CKPT_DIR=os.fspath(env_dir)), check=False)
    assert_error(refused, 'not a scratch dir managed by git-ckpt')
    assert steps(env_dir / 'out') == [1, 2, 3]
    # keep= cannot work there: said at setup(), before training, not at every save.
    warned = _setup_in(tmp_path, env_dir, keep='2')
    lines = [line for line in git_ckpt_lines(warned.stderr) if 'warning' in line]
    assert len(lines) == 1 and 'setup(keep=2)' in lines[0] and 'already held files' in lines[0]
    assert not (env_dir / '.git-ckpt.json').exists()


def test_setup_does_not_mark_a_git_ckpt_dir_inside_a_project_dir(hermetic, inited_repo, tmp_path):
    # Every managed dir in a project dir belongs to a worktree; a standalone one there would
    # look like an orphan to status and gc.
    project_dir = scratch_path(inited_repo).parent
    env_dir = project_dir / 'job-1'
    _setup_in(tmp_path, env_dir)
    assert env_dir.is_dir() and not (env_dir / '.git-ckpt.json').exists()


def test_setup_in_a_worktree_then_child_with_git_ckpt_dir_keeps_the_worktree_manifest(hermetic, repo):
    scratch = Path(python('import git_ckpt; print(git_ckpt.setup())', cwd=repo).stdout.strip())
    before = (scratch / '.git-ckpt.json').read_text()
    child = _setup_in(repo, scratch)  # a child process sees the exported GIT_CKPT_DIR
    assert child.stdout.strip() == os.fspath(scratch)
    assert (scratch / '.git-ckpt.json').read_text() == before
    assert 'standalone' not in json.loads(before)
