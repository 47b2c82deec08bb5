"""git_ckpt.setup(): real Trainer runs (tiny GPT-2 from a config, CPU) in real worktrees.

Every scenario runs in a subprocess: setup() patches a class and exports
environment variables, and each case must start from a fresh interpreter
(that is also how users run it).  Nothing is downloaded (HF_HUB_OFFLINE=1).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import git, make_repo, run, scratch_path

# Checked without importing them (that takes seconds); only the Trainer tests need them.
HAVE_TRANSFORMERS = all(importlib.util.find_spec(m) is not None for m in ('torch', 'transformers'))
needs_transformers = pytest.mark.skipif(
    not HAVE_TRANSFORMERS,
    reason="needs torch and transformers: pip install torch==2.13.0 '.[transformers]'")

EXAMPLE = Path(__file__).resolve().parent.parent / 'examples' / 'train_tiny.py'


@pytest.fixture
def hf_env(hermetic, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('TRANSFORMERS_OFFLINE', '1')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    for name in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'SLURM_PROCID', 'GIT_CKPT_WORKTREE'):
        monkeypatch.delenv(name, raising=False)
    return hermetic


def train(cwd, *args, before_import=False, env=None, check=True):
    """Run examples/train_tiny.py; returns (summary of rank 0, completed process)."""
    if before_import:
        # The user imported transformers' Trainer before git_ckpt.setup() ran.
        code = ('import sys, runpy, transformers.trainer\n'
                'assert "transformers.training_args" in sys.modules\n'
                f'sys.argv = [{os.fspath(EXAMPLE)!r}] + sys.argv[1:]\n'
                f'runpy.run_path({os.fspath(EXAMPLE)!r}, run_name="__main__")\n')
        cmd = [sys.executable, '-c', code, *args]
    else:
        cmd = [sys.executable, EXAMPLE, *args]
    proc = run(cmd, cwd=cwd, env=env, check=check)
    return summaries(proc)[0] if proc.returncode == 0 else None, proc


def summaries(proc):
    """train_tiny.py's JSON summary of every rank.  Found by their shape, not by
    line: two ranks share one stdout and may interleave on a line."""
    found = re.findall(r'\{"scratch": .*?"rank": \d+\}', proc.stdout)
    return sorted((json.loads(text) for text in found), key=lambda s: s['rank'])


def steps(directory: Path) -> list[int]:
    return sorted(int(p.name.split('-')[1]) for p in directory.iterdir() if p.name.startswith('checkpoint-'))


def files_in_worktree(top: Path) -> list[str]:
    """Everything under the worktree except .git, without following links."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != '.git']
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]  # not walked into
        out += [os.path.relpath(os.path.join(dirpath, f), top) for f in filenames + links]
    return sorted(out)


def python(code: str, cwd, env=None, check=True):
    return run([sys.executable, '-c', textwrap.dedent(code)], cwd=cwd, env=env, check=check)


def git_ckpt_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith('git-ckpt:')]


# --- Trainer features --------------------------------------------------------------------------

@needs_transformers
@pytest.mark.slow
def test_checkpoints_go_to_scratch_and_save_total_limit_keeps_two(hf_env, repo):
    summary, proc = train(repo, '--save-total-limit', '2')
    scratch = scratch_path(repo)  # what `git ckpt path` says: the same dir
    assert summary['scratch'] == os.fspath(scratch)
    assert summary['output_dir'] == os.fspath(scratch / 'out')
    assert steps(scratch / 'out') == [6, 8]
    # Only the link is left in the worktree, and git ignores it.
    assert (repo / 'out').is_symlink() and os.readlink(repo / 'out') == os.fspath(scratch / 'out')
    assert files_in_worktree(repo) == ['README', 'out']
    assert git('status', '--porcelain', cwd=repo).stdout == ''
    assert len([line for line in git_ckpt_lines(proc.stderr) if 'checkpoints go to' in line]) == 1


@needs_transformers
@pytest.mark.slow
def test_two_output_dirs_stay_separate(hf_env, repo):
    train(repo, '--output-dir', 'out', '--max-steps', '4')
    train(repo, '--output-dir', 'runs/b', '--max-steps', '6', '--seed', '1')
    scratch = scratch_path(repo)
    assert steps(scratch / 'out') == [2, 4]
    assert steps(scratch / 'runs' / 'b') == [2, 4, 6]
    # Same step, different runs: neither overwrote the other.
    for run_dir, max_steps in ((scratch / 'out', 4), (scratch / 'runs' / 'b', 6)):
        state = json.loads((run_dir / 'checkpoint-4' / 'trainer_state.json').read_text())
        assert state['max_steps'] == max_steps
    # The first missing component becomes the link: runs -> <scratch>/runs.
    assert os.readlink(repo / 'runs') == os.fspath(scratch / 'runs')
    assert steps(repo / 'runs' / 'b') == [2, 4, 6]  # eval scripts reading the old path still work
    assert git('status', '--porcelain', cwd=repo).stdout == ''


@needs_transformers
@pytest.mark.slow
def test_resume_from_checkpoint_true_resumes_from_scratch(hf_env, repo):
    first, _ = train(repo, '--max-steps', '4')
    second, _ = train(repo, '--max-steps', '8', '--resume')
    assert first['output_dir'] == second['output_dir']
    assert second['start_step'] == 4 and second['global_step'] == 8
    assert steps(Path(second['output_dir'])) == [2, 4, 6, 8]


@needs_transformers
@pytest.mark.slow
def test_load_best_model_at_end_with_rotation_keeps_the_best(hf_env, repo):
    # best = highest eval loss, i.e. the first checkpoint: rotation must spare it.
    summary, _ = train(repo, '--best', '--save-total-limit', '2')
    out = Path(summary['output_dir'])
    assert summary['best_model_checkpoint'] == os.fspath(out / 'checkpoint-2')
    assert steps(out) == [2, 8]


@needs_transformers
@pytest.mark.slow
def test_setup_before_or_after_importing_transformers_is_the_same(hf_env, tmp_path):
    results = []
    for name, before in (('before', False), ('after', True)):
        wt = make_repo(tmp_path / name / 'proj')
        summary, proc = train(wt, '--max-steps', '4', '--save-total-limit', '1', before_import=before)
        scratch = Path(summary['scratch'])
        results.append((os.path.relpath(summary['output_dir'], scratch), steps(scratch / 'out'),
                        os.readlink(wt / 'out') == os.fspath(scratch / 'out'), files_in_worktree(wt),
                        len(git_ckpt_lines(proc.stderr))))
    assert results[0] == results[1] == ('out', [4], True, ['README', 'out'], 2)


@needs_transformers
@pytest.mark.slow
def test_git_ckpt_dir_without_a_repository_calls_no_git(hf_env, tmp_path, monkeypatch):
    job = tmp_path / 'job'
    job.mkdir()
    ckpt_dir = tmp_path / 'slurm' / 'ckpt'
    monkeypatch.setenv('GIT_CKPT_DIR', os.fspath(ckpt_dir))
    monkeypatch.setenv('PATH', os.fspath(tmp_path / 'no-git-here'))  # any git call would fail
    summary, _ = train(job, '--max-steps', '4')
    assert summary['scratch'] == os.fspath(ckpt_dir)
    assert summary['output_dir'] == os.fspath(ckpt_dir / 'out')
    assert steps(ckpt_dir / 'out') == [2, 4]
    assert os.readlink(job / 'out') == os.fspath(ckpt_dir / 'out')


@needs_transformers
def test_child_process_of_a_linked_worktree_agrees_without_git(hf_env, repo, tmp_path):
    # setup() in a linked worktree; a child (an eval script, say) builds its own
    # TrainingArguments with no git on PATH: same scratch dir, link made and excluded.
    wt = tmp_path / 'exp1'
    git('worktree', 'add', '-q', wt, cwd=repo)
    child = ('import git_ckpt; d = git_ckpt.setup()\n'
             'from transformers import TrainingArguments\n'
             'print(d, TrainingArguments(output_dir="evalout", report_to=[], use_cpu=True).output_dir)\n')
    proc = python(f'''
        import os, subprocess, sys, git_ckpt
        print(git_ckpt.setup(), flush=True)
        env = dict(os.environ, PATH={os.fspath(tmp_path / 'no-git-here')!r})
        subprocess.run([sys.executable, '-c', {child!r}], env=env, check=True)
    ''', cwd=wt)
    parent, child_line = proc.stdout.splitlines()
    scratch = scratch_path(wt)
    assert parent == os.fspath(scratch) and scratch != scratch_path(repo)
    assert child_line.split() == [os.fspath(scratch), os.fspath(scratch / 'evalout')]
    assert os.readlink(wt / 'evalout') == os.fspath(scratch / 'evalout')
    assert git('status', '--porcelain', cwd=wt).stdout == ''


def torchrun(*script_args, cwd):
    """examples/train_tiny.py under a real 2-process torchrun (gloo).

    torch 2.13's gloo teardown sometimes aborts a rank at interpreter exit
    ("terminate called without an active exception") AFTER training and our
    summary line are done; that is retried once (a fresh run, asserted in
    full).  Any other failure fails the test."""
    for attempt in (1, 2):
        with socket.socket() as s:  # a free port for the rendezvous
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        proc = run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
                    '--master_addr=127.0.0.1', f'--master_port={port}', EXAMPLE, *script_args],
                   cwd=cwd, timeout=300, check=False)
        teardown_abort = ('terminate called without an active exception' in proc.stderr
                          and proc.stdout.count('"rank": ') == 2)
        if proc.returncode == 0 or not teardown_abort or attempt == 2:
            break
    assert proc.returncode == 0, f'torchrun exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}'
    return proc


@needs_transformers
@pytest.mark.slow
def test_torchrun_two_ranks(hf_env, repo):
    proc = torchrun('--save-total-limit', '2', cwd=repo)
    rank0, rank1 = summaries(proc)
    scratch = scratch_path(repo)
    assert rank0['scratch'] == rank1['scratch'] == os.fspath(scratch)
    assert rank0['output_dir'] == rank1['output_dir'] == os.fspath(scratch / 'out')
    assert steps(scratch / 'out') == [6, 8]
    assert os.readlink(repo / 'out') == os.fspath(scratch / 'out')
    # Rank 0 talks, once; nobody warns (a lost link race is not a problem).
    lines = git_ckpt_lines(proc.stderr)
    assert len([line for line in lines if 'checkpoints go to' in line]) == 1, proc.stderr
    assert not [line for line in lines if 'warning' in line], proc.stderr
    assert files_in_worktree(repo) == ['README', 'out']


# --- output_dir mapping (no training) ----------------------------------------------------------

MAPPING = '''
    import json, os, sys
    import git_ckpt
    scratch = git_ckpt.setup(link={link})
    from transformers import TrainingArguments
    def out(d, **kw):
        return TrainingArguments(output_dir=d, report_to=[], use_cpu=True, **kw).output_dir
    os.makedirs("src", exist_ok=True)
    res = {{
        "default": TrainingArguments(report_to=[], use_cpu=True).output_dir,
        "relative": out("out"),
        "absolute_inside": out(os.path.abspath("abs_in")),
        "outside": out({outside!r}),
        "under_scratch": out(str(scratch / "mine")),
        "existing_real_dir": out("old"),
        "through_link": out("out/../out"),
    }}
    # The ways scripts build their arguments: subclasses, the CLI parser, copies.
    import dataclasses
    from transformers import HfArgumentParser, Seq2SeqTrainingArguments
    res["seq2seq"] = Seq2SeqTrainingArguments(output_dir="s2s", report_to=[], use_cpu=True).output_dir
    (cli,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", "cli", "--report_to", "none", "--use_cpu"])
    res["cli"] = cli.output_dir
    res["replace"] = dataclasses.replace(cli, output_dir="copy").output_dir
    res["replace_same"] = dataclasses.replace(cli).output_dir
    os.chdir("src")
    res["from_subdir"] = out("sub_out")
    print(json.dumps({{"scratch": str(scratch), **res}}))
'''


@needs_transformers
@pytest.mark.parametrize('link', [True, False])
def test_output_dir_mapping(hf_env, repo, tmp_path, link):
    (repo / 'old').mkdir()
    (repo / 'old' / 'checkpoint-1').mkdir()
    outside = os.fspath(tmp_path / 'elsewhere' / 'run')
    proc = python(MAPPING.format(link=link, outside=outside), cwd=repo)
    res = json.loads(proc.stdout.splitlines()[-1])
    scratch = Path(res['scratch'])
    assert res['default'] == os.fspath(scratch / 'trainer_output')
    assert res['relative'] == res['through_link'] == os.fspath(scratch / 'out')
    assert res['absolute_inside'] == os.fspath(scratch / 'abs_in')
    assert res['outside'] == outside                       # documented: left alone
    assert res['under_scratch'] == os.fspath(scratch / 'mine')
    assert res['existing_real_dir'] == os.fspath(scratch / 'old')
    assert res['from_subdir'] == os.fspath(scratch / 'src' / 'sub_out')  # relative to the worktree top
    for key in ('seq2seq', 'cli', 'replace'):
        assert res[key] == os.fspath(scratch / {'seq2seq': 's2s', 'cli': 'cli', 'replace': 'copy'}[key])
    assert res['replace_same'] == os.fspath(scratch / 'cli')
    # A real directory is never replaced; the warning names the fix.
    assert (repo / 'old' / 'checkpoint-1').is_dir() and not (repo / 'old').is_symlink()
    migrate = [line for line in git_ckpt_lines(proc.stderr) if 'git ckpt migrate old' in line]
    assert len(migrate) == (1 if link else 0), proc.stderr
    links = sorted(p.name for p in repo.iterdir() if p.is_symlink())
    assert links == (['abs_in', 'cli', 'copy', 'out', 's2s', 'trainer_output'] if link else [])
    if link:
        assert os.readlink(repo / 'src' / 'sub_out') == os.fspath(scratch / 'src' / 'sub_out')
    assert git('status', '--porcelain', '--untracked-files=all', cwd=repo).stdout == ''


# --- setup() itself: light, idempotent, quiet, errors -------------------------------------------

def test_setup_is_light_idempotent_and_exports_the_dir(hf_env, repo):
    proc = python('''
        import os, sys, git_ckpt
        a = git_ckpt.setup()
        b = git_ckpt.setup()
        assert a == b == git_ckpt.scratch_dir(), (a, b)
        heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'click', 'git'))
        assert not heavy, heavy
        assert os.environ['GIT_CKPT_DIR'] == str(a)
        print(a)
    ''', cwd=repo)
    assert proc.stdout.strip() == os.fspath(scratch_path(repo))
    assert len(git_ckpt_lines(proc.stderr)) == 1  # one line, printed once


def test_quiet(hf_env, repo, monkeypatch):
    assert python('import git_ckpt; git_ckpt.setup(quiet=True)', cwd=repo).stderr == ''
    monkeypatch.setenv('GIT_CKPT_QUIET', '1')
    assert python('import git_ckpt; git_ckpt.setup()', cwd=repo).stderr == ''


def test_project_name(hf_env, repo):
    proc = python('import git_ckpt; print(git_ckpt.setup(project_name="my_exp"))', cwd=repo)
    assert Path(proc.stdout.strip()).parent.name.startswith('my_exp-')
    bad = python('import git_ckpt; git_ckpt.setup(project_name="../x")', cwd=repo, check=False)
    assert bad.returncode != 0 and "GitCkptError: invalid project name '../x'" in bad.stderr


def _error_line(proc) -> str:
    assert proc.returncode != 0
    return proc.stderr.strip().splitlines()[-1]


def test_unusable_root_raises_before_training(hf_env, repo, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hf_env.tmp / 'missing'))
    line = _error_line(python('import git_ckpt; git_ckpt.setup()', cwd=repo, check=False))
    assert line.startswith('git_ckpt.errors.GitCkptError: scratch root') and 'does not exist; create it' in line


def test_root_not_writable_by_you_raises(hf_env, repo, unprivileged_user, monkeypatch):
    root = hf_env.tmp / 'theirs'
    root.mkdir(mode=0o700)
    os.chown(root, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    line = _error_line(python('import git_ckpt; git_ckpt.setup()', cwd=repo, check=False))
    assert 'is owned by ckpt-test-user, not you; use a directory of your own' in line


def test_git_ckpt_dir_that_is_a_file_raises(hf_env, tmp_path, monkeypatch):
    (tmp_path / 'f').write_text('')
    monkeypatch.setenv('GIT_CKPT_DIR', os.fspath(tmp_path / 'f'))
    line = _error_line(python('import git_ckpt; git_ckpt.setup()', cwd=tmp_path, check=False))
    assert 'is not a directory; unset GIT_CKPT_DIR' in line


def test_hf_cache(hf_env, repo, monkeypatch):
    proc = python('import os, git_ckpt; git_ckpt.setup(hf_cache=True); print(os.environ["HF_HOME"])', cwd=repo)
    assert proc.stdout.strip() == os.fspath(hf_env.root / 'huggingface')
    assert (hf_env.root / 'huggingface').is_dir()
    if importlib.util.find_spec('huggingface_hub') is not None:
        late = python('import huggingface_hub, git_ckpt; git_ckpt.setup(hf_cache=True)', cwd=repo)
        assert 'huggingface_hub was imported before setup(hf_cache=True)' in late.stderr
    monkeypatch.setenv('HF_HOME', os.fspath(hf_env.tmp / 'mine'))
    kept = python('import os, git_ckpt; git_ckpt.setup(hf_cache=True); print(os.environ["HF_HOME"])', cwd=repo)
    assert kept.stdout.strip() == os.fspath(hf_env.tmp / 'mine')


# --- unsupported transformers ------------------------------------------------------------------

FAKE_TRAINING_ARGS = '''
from dataclasses import dataclass
@dataclass
class TrainingArguments:
    output_dir: str = None
    def __post_init__(self):
        if self.output_dir is None:
            self.output_dir = "trainer_output"
'''


@pytest.mark.parametrize('version', ['6.0.0', '4.20.1'])
@pytest.mark.parametrize('setup_first', [True, False])
def test_unsupported_transformers_version_warns_and_does_not_patch(hf_env, repo, tmp_path, version,
                                                                   setup_first):
    # A stand-in package with that version (the installed one is 5.x): this tests our gate,
    # which must warn, leave output_dir alone and never break the user's import.
    fake = tmp_path / 'fake' / 'transformers'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text(f'__version__ = {version!r}\n')
    (fake / 'training_args.py').write_text(FAKE_TRAINING_ARGS)
    order = (['import git_ckpt; git_ckpt.setup()', 'from transformers.training_args import TrainingArguments']
             if setup_first else
             ['from transformers.training_args import TrainingArguments', 'import git_ckpt; git_ckpt.setup()'])
    env = dict(os.environ, PYTHONPATH=os.fspath(fake.parent))
    proc = python('\n'.join(order + ['print(TrainingArguments(output_dir="out").output_dir)']),
                  cwd=repo, env=env)
    assert proc.stdout.strip() == 'out'
    warning = [line for line in git_ckpt_lines(proc.stderr) if 'warning' in line]
    assert len(warning) == 1 and f'transformers {version}' in warning[0]
    assert 'NOT redirected' in warning[0]
    if not setup_first:  # known at setup() time; otherwise the warning comes at import
        assert not any('checkpoints go to' in line for line in git_ckpt_lines(proc.stderr))


# --- issue 8, scenario 5: GIT_CKPT_DIR someone else planted ---------------------

def test_setup_refuses_a_git_ckpt_dir_that_is_a_symlink(hf_env, repo, tmp_path, monkeypatch):
    theirs = tmp_path / 'theirs'
    theirs.mkdir()
    link = tmp_path / 'job-dir'
    link.symlink_to(theirs)
    monkeypatch.setenv('GIT_CKPT_DIR', os.fspath(link))
    proc = python('''
        import sys, git_ckpt
        try:
            git_ckpt.setup()
        except git_ckpt.GitCkptError as exc:
            print(exc, file=sys.stderr)
            sys.exit(1)
    ''', cwd=repo, check=False)
    assert proc.returncode == 1 and 'is a symlink' in proc.stderr, proc.stderr
    assert list(theirs.iterdir()) == []


def test_common_git_dir_of_a_submodule_is_its_own(hermetic):
    """setup() in a child (GIT_CKPT_DIR mode) finds the git dir without git:
    a submodule's .git file points at <super>/.git/modules/NAME, which has no
    commondir file (it is its own common dir)."""
    from git_ckpt.hf import _common_git_dir
    sub_src = make_repo(hermetic.tmp / 'sub-src')
    sup = make_repo(hermetic.tmp / 'super')
    git('submodule', 'add', '-q', sub_src, 'sub', cwd=sup)
    assert _common_git_dir(sup / 'sub') == sup / '.git' / 'modules' / 'sub'
    assert _common_git_dir(sup) == sup / '.git'
