"""The post-checkout hook and its installation (issue 2, section 6), fired by
real git: `git worktree add`, branch switches, sha256 repos, odd paths,
foreign hooks, core.hooksPath, a venv that is not on PATH."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from conftest import BIN_DIR, add_worktree, ckpt, git, make_repo, run, scratch_path
from git_ckpt import constants as C
from git_ckpt import hooks
from git_ckpt.worktree import current_worktree

HOOK_TEMPLATE = Path(__file__).resolve().parent.parent / 'hooks' / 'post-checkout'
SYSTEM_PATH = '/usr/bin:/bin'  # git and sh, but no git-ckpt and no venv


def recording_python(tmp: Path) -> tuple[Path, Path]:
    """A python wrapper that logs every call, to see when the hook starts Python."""
    log = tmp / 'python-calls.log'
    wrapper = tmp / 'recording-python'
    wrapper.write_text(  # one log line per call, whatever newlines the arguments hold
        f'#!/bin/sh\nprintf "%s " "$@" | tr "\\n" " " >> "{log}"\necho >> "{log}"\n'
        f'exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def install_with(repo: Path, python: Path | str) -> None:
    results = hooks.install_all(current_worktree(repo), python=os.fspath(python))
    actions = {r.action for r in results}   # one per hook in C.HOOK_NAMES
    assert len(results) == len(C.HOOK_NAMES) and len(actions) == 1
    assert actions <= {'installed', 'updated', 'unchanged'}


# -- post-checkout on `git worktree add` ----------------------------------------------

def test_worktree_add_creates_the_scratch_dir(inited_repo, hermetic):
    proc = git('worktree', 'add', hermetic.tmp / 'exp1', cwd=inited_repo)
    created = [line for line in proc.stderr.splitlines() if line.startswith('git-ckpt:')]
    assert len(created) == 1 and 'scratch dir for exp1' in created[0]
    d = Path(created[0].rsplit(': ', 1)[1])
    assert d.is_dir() and (d / C.MANIFEST_NAME).is_file()
    assert d == scratch_path(hermetic.tmp / 'exp1')
    assert json.loads((d / C.MANIFEST_NAME).read_text())['branch'] == 'exp1'


def test_branch_switch_starts_no_python(inited_repo, hermetic):
    wrapper, log = recording_python(hermetic.tmp)
    install_with(inited_repo, wrapper)
    git('switch', '-q', '-c', 'feature', cwd=inited_repo)
    git('checkout', '-q', 'main', cwd=inited_repo)
    git('checkout', '-q', 'HEAD~0', '--', 'README', cwd=inited_repo)  # a file checkout
    assert calls(log) == []
    add_worktree(inited_repo, hermetic.tmp / 'exp1')
    head = git('rev-parse', 'HEAD', cwd=inited_repo).stdout.strip()
    assert len(calls(log)) == 1
    assert calls(log)[0].endswith(f' post-checkout {C.NULL_SHA1} {head} 1 ')
    assert scratch_path(hermetic.tmp / 'exp1').is_dir()
    git('switch', '-q', '-c', 'exp1-b', cwd=hermetic.tmp / 'exp1')
    assert len(calls(log)) == 1


def test_sha256_repository(hermetic):
    repo = make_repo(hermetic.tmp / 'sha256 repo', object_format='sha256')
    ckpt('init', cwd=repo)
    wrapper, log = recording_python(hermetic.tmp)
    install_with(repo, wrapper)
    git('switch', '-q', '-c', 'other', cwd=repo)
    assert calls(log) == []
    exp1 = add_worktree(repo, hermetic.tmp / 'exp1')
    assert calls(log)[0].split()[-3] == C.NULL_SHA256 and len(calls(log)) == 1
    assert scratch_path(exp1).is_dir()
    assert (scratch_path(exp1) / C.MANIFEST_NAME).is_file()


def test_checkout_never_fails_on_a_broken_root(inited_repo, hermetic, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hermetic.tmp / 'no-such-root'))
    proc = git('worktree', 'add', hermetic.tmp / 'exp1', cwd=inited_repo)
    assert proc.returncode == 0
    assert (hermetic.tmp / 'exp1' / 'README').is_file()
    warnings = [line for line in proc.stderr.splitlines() if line.startswith('git-ckpt')]
    assert len(warnings) == 1
    assert warnings[0].startswith('git-ckpt: warning: ') and 'does not exist' in warnings[0]
    assert 'checkout not affected' in warnings[0]
    assert 'Traceback' not in proc.stderr


def test_checkout_never_fails_when_the_root_is_a_file(inited_repo, hermetic, monkeypatch):
    (hermetic.tmp / 'file-root').write_text('')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hermetic.tmp / 'file-root'))
    proc = git('worktree', 'add', hermetic.tmp / 'exp1', cwd=inited_repo)
    assert 'not a directory' in proc.stderr and 'Traceback' not in proc.stderr


@pytest.mark.parametrize('parent,name', [
    ('my projects', 'exp one'),
    ('prøjects ü', 'éxp-ñ 日本'),
    ('new\nline', 'exp\ttab\nnl'),  # control characters become _ in dir names
])
def test_paths_with_spaces_and_non_ascii(hermetic, parent, name):
    repo = make_repo(hermetic.tmp / parent / 'the repo')
    ckpt('init', cwd=repo)
    wt = add_worktree(repo, hermetic.tmp / parent / name, '-b', 'exp')
    d = scratch_path(wt)
    assert d.is_dir()
    readable = ''.join('_' if ord(ch) < 32 else ch for ch in name)
    assert d.name.startswith(f'{readable}-') and d.parent.name.startswith('the repo-')
    manifest = json.loads((d / C.MANIFEST_NAME).read_text(encoding='utf-8'))
    assert manifest['worktree'] == os.fspath(wt)
    out = ckpt('path', cwd=wt / '.').stdout
    assert out == f'{d}\n'


def test_clone_of_a_repo_that_was_never_inited_is_left_alone(hermetic, repo):
    # A global core.hooksPath holding our hook fires on every clone, of every repo.
    shared_hooks = hermetic.tmp / 'global-hooks'
    git('config', '--global', 'core.hooksPath', shared_hooks)
    ckpt('init', cwd=repo)
    assert (shared_hooks / 'post-checkout').is_file()
    before = sorted(hermetic.root.iterdir())
    other = make_repo(hermetic.tmp / 'other')
    proc = git('clone', '-q', other, hermetic.tmp / 'clone')
    assert sorted(hermetic.root.iterdir()) == before
    assert 'git-ckpt' not in proc.stderr


# -- where hooks go ------------------------------------------------------------------

def test_hooks_go_to_the_common_dir_shared_by_all_worktrees(repo, hermetic):
    exp1 = add_worktree(repo, hermetic.tmp / 'exp1')
    proc = ckpt('init', cwd=exp1)  # from a linked worktree
    hook = repo / '.git' / 'hooks' / 'post-checkout'
    assert f'hook post-checkout: installed ({hook})' in proc.stdout
    assert hooks.hooks_dir(current_worktree(exp1)) == repo / '.git' / 'hooks'
    assert not (repo / '.git' / 'worktrees' / 'exp1' / 'hooks').exists()
    add_worktree(repo, hermetic.tmp / 'exp2')
    assert scratch_path(hermetic.tmp / 'exp2').is_dir()


@pytest.mark.parametrize('relative', [False, True])
def test_core_hooks_path_is_honoured(repo, hermetic, relative):
    target = repo / '.githooks' if relative else hermetic.tmp / 'my hooks'
    git('config', 'core.hooksPath', '.githooks' if relative else target, cwd=repo)
    ckpt('init', cwd=repo)
    assert (target / 'post-checkout').is_file()
    assert not (repo / '.git' / 'hooks' / 'post-checkout').exists()
    exp1 = add_worktree(repo, hermetic.tmp / 'exp1')
    assert scratch_path(exp1).is_dir()
    ckpt('uninstall', cwd=repo)
    assert not (target / 'post-checkout').exists()


def test_installed_hook_is_the_shipped_template_with_the_interpreter_filled_in(inited_repo):
    installed = (inited_repo / '.git' / 'hooks' / 'post-checkout').read_text().splitlines()
    template = HOOK_TEMPLATE.read_text().splitlines()
    assert len(installed) == len(template)
    diff = [(a, b) for a, b in zip(template, installed) if a != b]
    assert diff == [(f"{C.HOOK_PYTHON_LINE}''", f'{C.HOOK_PYTHON_LINE}{sys.executable}')]
    mode = (inited_repo / '.git' / 'hooks' / 'post-checkout').stat().st_mode
    assert mode & stat.S_IXUSR


def test_hook_template_is_posix_sh():
    if not Path('/bin/dash').exists() and not Path('/usr/bin/dash').exists():
        pytest.skip('dash not installed')
    run(['dash', '-n', HOOK_TEMPLATE])
    assert HOOK_TEMPLATE.read_text().startswith('#!/bin/sh\n')


# -- foreign hooks -----------------------------------------------------------------------

def foreign_hook(repo: Path, status: int, log: Path) -> Path:
    hook = repo / '.git' / 'hooks' / 'post-checkout'
    hook.write_text(f'#!/bin/sh\necho "foreign $*" >> "{log}"\nexit {status}\n')
    hook.chmod(0o750)
    return hook


def test_foreign_hook_is_chained_and_its_status_respected(repo, hermetic):
    log = hermetic.tmp / 'foreign.log'
    hook = foreign_hook(repo, 3, log)
    original = hook.read_bytes()
    proc = ckpt('init', cwd=repo)
    assert 'hook post-checkout: chained' in proc.stdout
    chained = hook.with_name('post-checkout' + C.CHAINED_SUFFIX)
    assert chained.read_bytes() == original
    # A branch switch: the foreign hook runs and its failure is git's failure.
    proc = git('switch', '-c', 'b', cwd=repo, check=False)
    assert proc.returncode != 0
    assert len(log.read_text().splitlines()) == 1
    # Our shim passes the exact status on.
    direct = run([hook, 'a' * 40, 'b' * 40, '1'], cwd=repo, check=False)
    assert direct.returncode == 3
    assert len(log.read_text().splitlines()) == 2
    # `git worktree add`: the foreign hook runs, and our scratch dir is made too.
    proc = git('worktree', 'add', hermetic.tmp / 'exp1', cwd=repo, check=False)
    assert proc.returncode != 0
    assert log.read_text().splitlines()[2].startswith(f'foreign {C.NULL_SHA1} ')
    assert scratch_path(hermetic.tmp / 'exp1').is_dir()


def test_foreign_hook_success_keeps_checkouts_green(repo, hermetic):
    log = hermetic.tmp / 'foreign.log'
    foreign_hook(repo, 0, log)
    ckpt('init', cwd=repo)
    git('switch', '-q', '-c', 'b', cwd=repo)
    add_worktree(repo, hermetic.tmp / 'exp1')
    assert len(log.read_text().splitlines()) == 2


def test_uninstall_restores_the_foreign_hook(repo, hermetic):
    hook = foreign_hook(repo, 0, hermetic.tmp / 'foreign.log')
    original, mode = hook.read_bytes(), stat.S_IMODE(hook.stat().st_mode)
    ckpt('init', cwd=repo)
    ckpt('init', cwd=repo)  # idempotent: does not chain our own hook
    assert hook.with_name('post-checkout' + C.CHAINED_SUFFIX).read_bytes() == original
    proc = ckpt('uninstall', cwd=repo)
    assert 'hook post-checkout: restored' in proc.stdout
    assert hook.read_bytes() == original
    assert stat.S_IMODE(hook.stat().st_mode) == mode
    assert not hook.with_name('post-checkout' + C.CHAINED_SUFFIX).exists()
    assert 'absent' in ckpt('uninstall', cwd=repo).stdout


def test_uninstall_without_a_foreign_hook_removes_ours(inited_repo):
    proc = ckpt('uninstall', cwd=inited_repo)
    assert 'hook post-checkout: removed' in proc.stdout
    assert not (inited_repo / '.git' / 'hooks' / 'post-checkout').exists()


def test_non_executable_foreign_hook_is_not_run(repo, hermetic):
    log = hermetic.tmp / 'foreign.log'
    hook = foreign_hook(repo, 5, log)
    hook.chmod(0o644)  # git would not run it either
    ckpt('init', cwd=repo)
    git('switch', '-q', '-c', 'b', cwd=repo)
    assert not log.exists()


def test_two_foreign_hooks_are_refused_not_overwritten(repo, hermetic):
    hook = foreign_hook(repo, 0, hermetic.tmp / 'a.log')
    hook.with_name('post-checkout' + C.CHAINED_SUFFIX).write_text('#!/bin/sh\nexit 0\n')
    proc = ckpt('init', cwd=repo, check=False)
    assert proc.returncode == 1 and 'merge them by hand' in proc.stderr
    assert C.HOOK_MARKER not in hook.read_text()


# -- the interpreter: venv not on PATH, or gone ---------------------------------------------

def test_hook_works_with_the_venv_not_on_path(inited_repo, hermetic, monkeypatch):
    monkeypatch.setenv('PATH', SYSTEM_PATH)
    proc = git('worktree', 'add', hermetic.tmp / 'exp1', cwd=inited_repo)
    assert 'scratch dir for exp1' in proc.stderr
    monkeypatch.setenv('PATH', f'{BIN_DIR}{os.pathsep}{SYSTEM_PATH}')
    assert scratch_path(hermetic.tmp / 'exp1').is_dir()


def test_hook_falls_back_to_path_when_the_install_python_is_gone(repo, hermetic, monkeypatch):
    ckpt('init', cwd=repo)
    install_with(repo, hermetic.tmp / 'deleted-venv' / 'bin' / 'python')
    proc = git('worktree', 'add', hermetic.tmp / 'exp1', cwd=repo)  # git-ckpt is on PATH
    assert 'scratch dir for exp1' in proc.stderr
    assert scratch_path(hermetic.tmp / 'exp1').is_dir()


def test_hook_falls_back_to_path_when_the_install_python_lost_git_ckpt(repo, hermetic):
    # The venv is still there but git-ckpt was uninstalled from it.
    ckpt('init', cwd=repo)
    bare_venv = hermetic.tmp / 'other-venv'
    run([sys.executable, '-m', 'venv', '--without-pip', bare_venv])
    install_with(repo, bare_venv / 'bin' / 'python')
    proc = git('worktree', 'add', hermetic.tmp / 'exp1', cwd=repo)  # git-ckpt is on PATH
    assert 'No module named' not in proc.stderr
    assert 'scratch dir for exp1' in proc.stderr
    assert scratch_path(hermetic.tmp / 'exp1').is_dir()


def test_hook_warns_when_git_ckpt_cannot_be_found(repo, hermetic, monkeypatch):
    ckpt('init', cwd=repo)
    install_with(repo, hermetic.tmp / 'deleted-venv' / 'bin' / 'python')
    monkeypatch.setenv('PATH', SYSTEM_PATH)
    proc = git('worktree', 'add', hermetic.tmp / 'exp1', cwd=repo)
    warning, = [line for line in proc.stderr.splitlines() if line.startswith('git-ckpt')]
    assert warning.startswith('git-ckpt: warning: git-ckpt not found')
    assert 'git ckpt path' in warning


def test_reinstall_with_another_interpreter_updates_the_hook(inited_repo, hermetic):
    wrapper, _ = recording_python(hermetic.tmp)
    results = hooks.install_all(current_worktree(inited_repo), python=os.fspath(wrapper))
    assert [r.action for r in results] == ['updated'] * len(C.HOOK_NAMES)
    assert f'{C.HOOK_PYTHON_LINE}{wrapper}' in (inited_repo / '.git/hooks/post-checkout').read_text()


# -- the pre-commit framework ------------------------------------------------------------------

def test_pre_commit_framework_hooks_are_not_overwritten(repo, hermetic):
    (repo / C.PRE_COMMIT_CONFIG).write_text('repos: []\n')
    hooks_dir = repo / '.git' / 'hooks'
    framework_hook = hooks_dir / 'post-checkout'
    framework_hook.write_text('#!/usr/bin/env bash\n# File generated by pre-commit\nexit 0\n')
    framework_hook.chmod(0o755)
    before = {p.name: p.read_bytes() for p in hooks_dir.iterdir()}
    proc = ckpt('init', cwd=repo)
    assert {p.name: p.read_bytes() for p in hooks_dir.iterdir()} == before
    assert C.PRE_COMMIT_CONFIG in proc.stdout
    assert f'- id: {C.POST_CHECKOUT_HOOK_ID}' in proc.stdout   # the manifest's hook ids
    assert f'- id: {C.GUARD_HOOK_ID}' in proc.stdout
    assert 'pre-commit install' in proc.stdout
    # The other set-up still happened.
    assert scratch_path(repo).is_dir()


def test_hook_entry_reads_pre_commit_refs(inited_repo, hermetic, monkeypatch):
    # Under the framework the refs arrive in PRE_COMMIT_FROM_REF, not as args.
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '--no-checkout')
    planned = scratch_path(exp1)
    env = {**os.environ, 'PRE_COMMIT_FROM_REF': 'a' * 40}
    run([sys.executable, '-m', 'git_ckpt', '_hook', 'post-checkout'], cwd=exp1, env=env)
    assert not planned.exists()
    env['PRE_COMMIT_FROM_REF'] = C.NULL_SHA1
    proc = run([sys.executable, '-m', 'git_ckpt', '_hook', 'post-checkout'], cwd=exp1, env=env)
    assert planned.is_dir() and proc.returncode == 0


def test_unknown_hook_name_is_one_line(inited_repo):
    proc = run([sys.executable, '-m', 'git_ckpt', '_hook', 'nope'], cwd=inited_repo, check=False)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1


def test_quiet_hook_says_nothing_but_still_creates(inited_repo, hermetic, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_QUIET', '1')
    proc = git('worktree', 'add', '-q', hermetic.tmp / 'exp1', cwd=inited_repo)
    assert proc.stderr == ''
    assert scratch_path(hermetic.tmp / 'exp1').is_dir()


def test_a_failing_extra_step_does_not_stop_the_others(inited_repo, hermetic, monkeypatch):
    """POST_CHECKOUT_EXTRAS: later features hook in here; one broken step is
    one warning line and the next step still runs (in-process, real repo)."""
    from git_ckpt import hook_entry
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '--no-checkout')
    seen = []

    def broken(location):
        raise RuntimeError('boom')

    def recorder(location):
        seen.append(location.scratch_dir)

    monkeypatch.setattr(hook_entry, 'POST_CHECKOUT_EXTRAS', [broken, recorder])
    monkeypatch.chdir(exp1)
    assert hook_entry.main(['post-checkout', C.NULL_SHA1, 'x', '1']) == 0
    assert seen == [scratch_path(exp1)] and seen[0].is_dir()


def test_uninstall_restores_the_foreign_hook_even_if_ours_was_deleted(repo, hermetic):
    hook = foreign_hook(repo, 0, hermetic.tmp / 'foreign.log')
    original = hook.read_bytes()
    ckpt('init', cwd=repo)
    hook.unlink()  # the user removed our hook by hand
    assert 'hook post-checkout: restored' in ckpt('uninstall', cwd=repo).stdout
    assert hook.read_bytes() == original


def test_uninstall_leaves_a_hook_that_replaced_ours_alone(inited_repo, hermetic):
    hook = foreign_hook(inited_repo, 0, hermetic.tmp / 'foreign.log')  # overwrote ours
    original = hook.read_bytes()
    assert 'hook post-checkout: absent' in ckpt('uninstall', cwd=inited_repo).stdout
    assert hook.read_bytes() == original


def test_the_guard_ends_its_own_process_only_when_it_is_the_process(repo, monkeypatch):
    """`git-ckpt _hook pre-commit` as a command ends without interpreter
    teardown (git_ckpt.hook_entry.run_guard_process); called in process with
    an argument list, as here, it returns and leaves the collector on."""
    import gc

    from git_ckpt.__main__ import main
    (repo / 'a.txt').write_text('a')
    (repo / 'w.safetensors').write_bytes(b'w')
    git('add', 'a.txt', 'w.safetensors', cwd=repo)
    monkeypatch.chdir(repo)
    assert main(['_hook', 'pre-commit', 'a.txt']) == 0
    assert gc.isenabled()
    proc = run([sys.executable, '-m', 'git_ckpt', '_hook', 'pre-commit', 'a.txt', 'w.safetensors'],
               cwd=repo, check=False)
    assert proc.returncode == 1 and 'w.safetensors' in proc.stderr and 'git commit --no-verify' in proc.stderr
