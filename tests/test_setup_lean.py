"""What keeps `git_ckpt.setup()` cheap, checked without timing anything (the timing is in
benchmarks/bench_setup.py): the modules it loads, the subprocess-free git runner (spawn.py), and
manifests checked on their text."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import run
from git_ckpt import git as G
from git_ckpt.errors import GitCkptError

LOADED = '''
import sys
before = set(sys.modules)
import git_ckpt
git_ckpt.setup()
print(' '.join(sorted(set(sys.modules) - before)))
'''
# Each costs start-up time (subprocess with locale/signal/threading ~3 ms, typing ~3 ms plus
# ~1 ms per NamedTuple) or is what setup() must never load itself.
NOT_ON_SETUPS_PATH = {'subprocess', 'typing', 'threading', 'signal', 'locale', 'datetime', 'getpass',
                      'importlib', 'importlib.abc', 'dataclasses', 'zlib', 'torch', 'transformers'}


def _loaded(cwd, env=None) -> set[str]:
    proc = run([sys.executable, '-c', LOADED], cwd=cwd, env=env)
    return set(proc.stdout.split())


def test_setup_in_a_worktree_loads_no_heavy_module(hermetic, repo):
    first = _loaded(repo)  # creates the scratch dir: writes manifests (json; dates by time.strftime)
    assert not first & NOT_ON_SETUPS_PATH
    loaded = _loaded(repo)  # the steady state of every later run: manifests checked on their text
    assert 'git_ckpt.hf' in loaded and 'git_ckpt.worktree' in loaded  # it did run
    assert not loaded & (NOT_ON_SETUPS_PATH | {'json'})


def test_setup_with_git_ckpt_dir_loads_no_heavy_module_and_no_json(hermetic, tmp_path):
    env = dict(os.environ, GIT_CKPT_DIR=os.fspath(tmp_path / 'job'))
    run([sys.executable, '-c', 'import git_ckpt; git_ckpt.setup()'], cwd=tmp_path, env=env)  # creates it
    loaded = _loaded(tmp_path, env)  # the steady state: the manifest is there, not read
    assert not loaded & (NOT_ON_SETUPS_PATH | {'json'})


# --- run_git without subprocess -------------------------------------------------------------------

def test_both_pipes_fill_without_deadlock(repo):
    # 200 KB on each of stdout and stderr, more than a pipe buffer holds, from a real git alias.
    noise = (f'!{sys.executable} -c "import sys; sys.stderr.write(\'e\' * 200000); '
             f'sys.stdout.write(\'o\' * 200000)"')
    proc = G.run_git('-c', f'alias.noise={noise}', 'noise', cwd=repo)
    assert proc.returncode == 0
    assert proc.stdout == 'o' * 200000 and proc.stderr == 'e' * 200000


def test_git_runs_with_sigpipe_restored(repo):
    # Python ignores SIGPIPE; inherited, `yes` would report "Broken pipe" when head exits.
    proc = G.run_git('-c', 'alias.first=!yes | head -n 1', 'first', cwd=repo)
    assert (proc.stdout, proc.stderr) == ('y\n', '')


def test_output_keeps_carriage_returns_and_undecodable_bytes(repo):
    tricky = b'a\r\nb\xff'
    (repo / 'f').write_bytes(tricky)
    oid = G.run_git('hash-object', '-w', 'f', cwd=repo).stdout.strip()
    assert G.run_git('cat-file', 'blob', oid, cwd=repo).stdout == tricky.decode('utf-8', 'surrogateescape')
    assert G.run_git('cat-file', 'blob', oid, cwd=repo, text=False).stdout == tricky


def test_cwd_that_is_a_file_or_missing_is_one_error(repo):
    with pytest.raises(GitCkptError, match='is not a directory'):
        G.run_git('status', cwd=repo / 'README')
    with pytest.raises(GitCkptError, match='does not exist'):
        G.run_git('status', cwd=repo / 'missing', check=False)


def test_started_git_calls_overlap_and_are_collected_in_any_order(repo):
    config = G.start_config_get_all(repo)
    top = G.start_git('rev-parse', '--show-toplevel', cwd=repo)
    assert top().stdout.strip() == os.fspath(repo)
    assert config() == []
    failing = G.start_git('rev-parse', 'no-such-ref', cwd=repo)
    with pytest.raises(GitCkptError, match='git rev-parse failed'):
        failing()


def test_setup_outside_a_repository_reaps_the_config_read(hermetic, tmp_path):
    # The config read starts before rev-parse finds no repository: it must not be left behind.
    code = textwrap.dedent('''
        import os, git_ckpt
        try:
            git_ckpt.setup()
        except git_ckpt.GitCkptError as exc:
            print('error:', exc.problem)
        try:
            print('left:', os.waitpid(-1, os.WNOHANG))
        except ChildProcessError:
            print('left: none')
        ''')
    env = {k: v for k, v in os.environ.items() if k != 'GIT_CKPT_DIR'}
    proc = run([sys.executable, '-c', code], cwd=tmp_path, env=env)
    assert 'is not inside a git repository' in proc.stdout
    assert 'left: none' in proc.stdout


# --- manifests checked without json -----------------------------------------------------------------

def test_json_text_holds_agrees_with_json(tmp_path):
    from git_ckpt.scratch import json_text_holds, write_json_atomic
    path = tmp_path / 'm.json'
    write_json_atomic(path, {'schema': 1, 'worktree': '/w/exp 1', 'repo': '/r/.git',
                             'nested': {'worktree': '/elsewhere'}, 'tricky': 'x", "worktree": "/fake'})
    assert json_text_holds(path, {'schema': 1, 'worktree': '/w/exp 1', 'repo': '/r/.git'})
    assert not json_text_holds(path, {'worktree': '/elsewhere'})   # only nested there
    assert not json_text_holds(path, {'worktree': '/fake'})        # only inside a string value
    assert not json_text_holds(path, {'worktree': '/w/exp'})       # a prefix is not the value
    assert not json_text_holds(path, {'schema': 2})
    assert not json_text_holds(path, {'missing': 'x'})
    # Values json would escape are never judged on the text: read_json decides.
    write_json_atomic(path, {'worktree': '/w/é"x'})
    assert not json_text_holds(path, {'worktree': '/w/é"x'})
    path.write_text('{\n  "worktree": "/w"\n')                    # cut short
    assert not json_text_holds(path, {'worktree': '/w'})
    assert not json_text_holds(tmp_path / 'none.json', {})


def test_moved_worktree_still_updates_its_manifest(hermetic, repo, tmp_path):
    import json
    from conftest import add_worktree, git, scratch_path
    wt = add_worktree(repo, tmp_path / 'wt1')
    scratch = Path(run([sys.executable, '-c', 'import git_ckpt; print(git_ckpt.setup())'], cwd=wt).stdout.strip())
    git('worktree', 'move', wt, tmp_path / 'wt2', cwd=repo)
    again = run([sys.executable, '-c', 'import git_ckpt; print(git_ckpt.setup())'], cwd=tmp_path / 'wt2')
    assert again.stdout.strip() == os.fspath(scratch) == os.fspath(scratch_path(tmp_path / 'wt2'))
    manifest = json.loads((scratch / '.git-ckpt.json').read_text())
    assert manifest['worktree'] == os.fspath(tmp_path / 'wt2')
