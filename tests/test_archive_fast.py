"""The click-free `archive` fast path (git_ckpt/__main__.py).

Every case runs twice on the same kind of state: as users type it (`git ckpt
archive ...`, the fast path) and through the click CLI (git_ckpt.main.main),
and must give the same exit code, stdout and stderr.  Python's own import log
(PYTHONPROFILEIMPORTTIME) proves which path ran: the fast path never imports
click, and what it does not know (help, bad options) goes to click."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from conftest import add_worktree, git, run, scratch_path, tree_digest

from git_ckpt import transfer
from git_ckpt.__main__ import ARCHIVE_FLAGS, ARCHIVE_OPTIONS, parse_archive_args
from git_ckpt.main import cli

TODAY = time.strftime('%Y-%m-%d')
DEFAULTS = {'worktree_arg': None, 'to': None, 'orphans': False, 'run': None, 'fmt': 'dir',
            'delete_source': False, 'dry_run': False, 'cli_root': None}


def fill(scratch: Path, run_name: str = 'run1', steps=(10, 20)) -> None:
    for step in steps:
        ck = scratch / run_name / f'checkpoint-{step}'
        ck.mkdir(parents=True, exist_ok=True)
        (ck / 'model.safetensors').write_bytes(os.urandom(300_000))
        (ck / 'trainer_state.json').write_text(f'{{"global_step": {step}}}')


def via_fast_path(*args, cwd: Path) -> tuple[int, str, str, bool]:
    """`git ckpt archive ARGS` as typed: (exit code, stdout, stderr, click imported)."""
    proc = run(['git', 'ckpt', 'archive', *args], cwd=cwd, check=False,
               env={**os.environ, 'PYTHONPROFILEIMPORTTIME': '1'})
    imports = [line for line in proc.stderr.splitlines() if line.startswith('import time:')]
    stderr = ''.join(line + '\n' for line in proc.stderr.splitlines() if not line.startswith('import time:'))
    clicked = any(line.rsplit('|', 1)[-1].strip() == 'click' for line in imports)
    return proc.returncode, proc.stdout, stderr, clicked


def via_click(*args, cwd: Path) -> tuple[int, str, str]:
    proc = run([sys.executable, '-c', 'import sys; from git_ckpt.main import main; sys.exit(main(sys.argv[1:]))',
                'archive', *args], cwd=cwd, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def same_as_click(cwd: Path, fast_args: list, click_args: list, between=None,
                  replace: tuple[str, str] | None = None) -> tuple[int, str, str]:
    """Run the fast path, `between()`, then click; assert both gave the same
    result (with `replace` applied to click's output: its own --to dir) and
    that the first did not import click.  Returns the fast path's result."""
    code, out, err, clicked = via_fast_path(*fast_args, cwd=cwd)
    assert not clicked, 'the fast path imported click'
    if between:
        between()
    c_code, c_out, c_err = via_click(*click_args, cwd=cwd)
    if replace:
        c_out, c_err = (text.replace(*replace) for text in (c_out, c_err))
    assert (code, out, err) == (c_code, c_out, c_err)
    return code, out, err


@pytest.fixture
def exp1(inited_repo):
    wt = add_worktree(inited_repo, inited_repo.parent / 'exp1')
    scratch = scratch_path(wt)
    fill(scratch)
    return wt, scratch


@pytest.fixture
def two_dests(shm_dir, tmp_path):
    """A (fast, click) pair of --to dirs on another filesystem than the scratch root."""
    if os.stat(shm_dir).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip('/dev/shm is on the same filesystem as the test dir')
    return shm_dir / 'fast', shm_dir / 'click'


def test_arguments_as_click_parses_them():
    assert parse_archive_args([]) == DEFAULTS
    assert parse_archive_args(['exp1', '--to', '/a', '-n', '--root=/r', '--run', 'r1', '--format=tar.zst',
                               '--delete-source']) == \
        {**DEFAULTS, 'worktree_arg': 'exp1', 'to': '/a', 'dry_run': True, 'cli_root': '/r', 'run': 'r1',
         'fmt': 'tar.zst', 'delete_source': True}
    assert parse_archive_args(['--orphans', '--dry-run', '--format', 'dir', '--to=/b']) == \
        {**DEFAULTS, 'orphans': True, 'dry_run': True, 'to': '/b'}
    assert parse_archive_args(['--to', '/a', '--to', '/b', 'exp1']) == {**DEFAULTS, 'to': '/b',
                                                                        'worktree_arg': 'exp1'}  # last wins
    # Anything else goes to click: its help, its errors, what only it gets right.
    for args in (['-h'], ['--help'], ['--to'], ['--to', '-x'], ['--to='], ['--format', 'zip'], ['--format', ''],
                 ['--format', 'DIR'], ['a', 'b'], ['--bogus'], ['-nx'], ['--', 'x'], ['-'], ['--dry-run=1']):
        assert parse_archive_args(args) is None, args


def test_the_fast_path_knows_every_option_of_the_command():
    """Kept in step with main.py: every option click declares for archive is
    parsed the same way (a flag or one value), and nothing more."""
    command = cli.commands['archive']
    flags, options, arguments = set(), set(), []
    for param in command.params:
        if isinstance(param, click.Argument):
            arguments.append(param.name)
        elif param.is_flag:
            flags.update(param.opts)
        else:
            options.update(param.opts)
            assert param.nargs == 1 and not param.multiple
    assert flags == set(ARCHIVE_FLAGS) and options == set(ARCHIVE_OPTIONS)
    assert arguments == ['worktree_arg']
    choice = next(p for p in command.params if p.name == 'fmt')
    assert choice.default == DEFAULTS['fmt'] and parse_archive_args(['--format', 'tar.zst']) is not None
    # The names are those of the command's function.
    assert {p.name for p in command.params} == set(DEFAULTS)


def test_cross_filesystem_archive_same_as_click(exp1, two_dests):
    wt, scratch = exp1
    fast, slow = two_dests
    before = tree_digest(scratch)
    code, out, err = same_as_click(wt, ['--to', fast], ['--to', slow], replace=(os.fspath(slow), os.fspath(fast)))
    assert code == 0 and err == ''
    assert f'-> {fast}/exp1-{TODAY}  (copy, 5 files' in out and 'verified' in out
    for dest in (fast, slow):
        assert transfer.verify(dest / f'exp1-{TODAY}') == []
    assert tree_digest(scratch) == before


def test_every_option_same_as_click(exp1, two_dests):
    wt, scratch = exp1
    fast, slow = two_dests
    fill(scratch, 'run2', steps=(5,))
    swap = (os.fspath(slow), os.fspath(fast))
    # --dry-run / -n, a WORKTREE by name, --root, --format, --run.
    root = os.environ['GIT_CKPT_ROOT']
    same_as_click(wt, ['-n', 'exp1', '--to', fast], ['--dry-run', 'exp1', '--to', slow], replace=swap)
    code, out, _ = same_as_click(wt, ['--run', 'run2', f'--root={root}', '--to', fast, '--format', 'tar.zst'],
                                 ['--run', 'run2', '--root', root, '--to', slow, '--format=tar.zst'], replace=swap)
    assert f'{fast}/exp1-run2-{TODAY}.tar.zst  (tar.zst, 2 files' in out
    # --delete-source: the click run gets the same tree again.
    code, out, _ = same_as_click(wt, ['--delete-source', '--to', fast], ['--delete-source', '--to', slow],
                                 between=lambda: (fill(scratch), fill(scratch, 'run2', steps=(5,))), replace=swap)
    assert code == 0 and 'the source is kept' not in out
    assert sorted(os.listdir(scratch)) == ['.git-ckpt.json']
    # --orphans: none, then one (the click run archives it again: the source is kept).
    assert same_as_click(wt, ['--orphans'], ['--orphans'])[1] == 'no orphaned scratch dirs for this repository\n'
    exp2 = add_worktree(wt, wt.parent / 'exp2')
    fill(scratch_path(exp2))
    git('worktree', 'remove', '--force', exp2, cwd=wt)
    for args in (['--orphans', '-n'], ['--orphans']):
        code, out, _ = same_as_click(wt, [*args, '--to', fast], [*args, '--to', slow], replace=swap)
        assert code == 0 and f'{fast}/exp2-{TODAY}' in out


def test_same_filesystem_rename_same_as_click(exp1, tmp_path):
    wt, scratch = exp1
    fast, slow = tmp_path / 'fast', tmp_path / 'slow'
    code, out, _ = same_as_click(wt, ['--to', fast], ['--to', slow], between=lambda: fill(scratch),
                                 replace=(os.fspath(slow), os.fspath(fast)))
    assert f'-> {fast}/exp1-{TODAY}  (rename, 5 files' in out


def test_name_collision_same_as_click(exp1, two_dests):
    """An archive name already taken is never overwritten: the next free name."""
    wt, scratch = exp1
    fast, slow = two_dests
    for dest in two_dests:
        (dest / f'exp1-{TODAY}').mkdir(parents=True)
        (dest / f'exp1-{TODAY}' / 'theirs').write_text('keep me')
    code, out, _ = same_as_click(wt, ['--to', fast], ['--to', slow], replace=(os.fspath(slow), os.fspath(fast)))
    assert f'-> {fast}/exp1-{TODAY}-2  (copy' in out
    assert (fast / f'exp1-{TODAY}' / 'theirs').read_text() == 'keep me'
    # Every name taken: an error, nothing copied.
    for dest in two_dests:
        for i in range(3, 1000):
            (dest / f'exp1-{TODAY}-{i}').mkdir()
    code, out, err = same_as_click(wt, ['--to', fast], ['--to', slow], replace=(os.fspath(slow), os.fspath(fast)))
    assert code == 1 and out == ''
    assert err == f'git-ckpt: error: too many archives named exp1-{TODAY}* in {fast}; clean up old archives\n'


def test_bad_input_same_as_click(exp1, inited_repo, tmp_path, tmpfs_mount):
    wt, scratch = exp1
    before = tree_digest(scratch)
    other = tmp_path / 'other'
    git('init', '-q', other)
    read_only = tmpfs_mount('ro', options='ro')
    a_file = tmp_path / 'a-file'
    a_file.write_text('x')
    cases = [
        (['nosuch'], 'git-ckpt: error: nosuch is not a worktree of proj'),
        ([os.fspath(other)], f'is a worktree of another repository ({other}/.git)'),
        (['--to', os.fspath(read_only)], f'git-ckpt: error: archive dir {read_only} (--to) is not writable by you; '
                                         'choose a writable destination with --to DIR or fix its permissions'),
        (['--to', os.fspath(a_file)], f'archive dir {a_file} (--to)'),
        (['--run', '../x'], "--run '../x' is not a path inside the scratch dir"),
        (['--run', 'nope'], 'no run dir'),
        (['--orphans', 'exp1'], 'takes no WORKTREE'),
    ]
    for args, message in cases:
        code, out, err = same_as_click(wt, args, args)
        assert code == 1 and out == '' and len(err.splitlines()) == 1, (args, err)
        assert err.startswith('git-ckpt: error: ') and message in err, (args, err)
    # Outside any repository: git's answer, started before the engine loads, is the error.
    outside = tmp_path / 'outside'
    outside.mkdir()
    code, out, err = same_as_click(outside, [], [])
    assert code == 1 and err.startswith(f'git-ckpt: error: {outside} is not inside a git repository; ')
    assert tree_digest(scratch) == before
    assert os.listdir(read_only) == []


def test_what_the_fast_path_does_not_know_goes_to_click(exp1):
    wt, _ = exp1
    code, out, err, clicked = via_fast_path('--help', cwd=wt)
    assert code == 0 and clicked and '--delete-source' in out and 'Usage: git ckpt archive' in out
    for args, message in ((['--bogus'], "No such option '--bogus'"), (['--format', 'zip'], "'zip' is not one of"),
                          (['a', 'b'], 'unexpected extra argument (b)'), (['--to'], "Option '--to' requires an argument")):
        code, out, err, clicked = via_fast_path(*args, cwd=wt)
        assert clicked and code == 2 and out == '', args
        assert err.startswith('git-ckpt: error: ') and message in err and err.endswith('; see git ckpt -h\n'), err


def _interrupted(cmd: list, cwd: Path, partial: Path) -> tuple[int, str, str]:
    """Start an archive, send SIGINT (a Ctrl-C) once its copy has begun."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_ctrl_c_is_reported_as_click_reports_it(exp1, two_dests):
    """A blank line (after the terminal's ^C), then 'aborted', exit 130; the
    source intact and no archive reported."""
    wt, scratch = exp1
    with open(scratch / 'run1' / 'big.bin', 'wb') as f:
        f.write(os.urandom(1 << 20) * 256)
    before = tree_digest(scratch)
    results = []
    for dest, entry in zip(two_dests, (['-m', 'git_ckpt'], ['-c', 'import sys; from git_ckpt.main import main; '
                                                                  'sys.exit(main(sys.argv[1:]))'])):
        cmd = [sys.executable, *entry, 'archive', '--to', os.fspath(dest)]
        results.append(_interrupted(cmd, wt, dest / f'exp1-{TODAY}.partial'))
        assert not (dest / f'exp1-{TODAY}').exists()
    assert results[0] == results[1] == (130, '', '\ngit-ckpt: aborted\n')
    assert tree_digest(scratch) == before
