"""`git ckpt status` (issue 4, section 2): every worktree, orphans after both
removal paths, --all, --json schema, plain/rich output, bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from conftest import (HOUR_AGO, add_worktree, assert_error, ckpt, git, make_checkpoint, make_repo,
                      scratch_path)
from git_ckpt import constants as C

ROW_KEYS = {'project', 'worktree', 'removed_worktree', 'branch', 'scratch_dir', 'state', 'size',
            'checkpoints', 'latest', 'newest_mtime', 'runs', 'problems'}
TOP_KEYS = {'schema', 'root', 'total_size', 'free_bytes', 'filesystem_bytes', 'rows', 'problems'}


def status_json(cwd: Path, *args: str) -> dict:
    return json.loads(ckpt('status', '--json', *args, cwd=cwd).stdout)


def row_for(doc: dict, **match) -> dict:
    found = [r for r in doc['rows'] if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, doc['rows'])
    return found[0]


def test_every_worktree_and_orphans_after_both_removal_paths(inited_repo):
    exp1 = add_worktree(inited_repo, inited_repo.parent / 'exp1')
    gone_clean = add_worktree(inited_repo, inited_repo.parent / 'exp2')
    gone_rm = add_worktree(inited_repo, inited_repo.parent / 'exp3')
    for step in (9900, 10000):
        make_checkpoint(scratch_path(exp1) / 'run', f'checkpoint-{step}', files={'m': b'x' * 500_000},
                        age=HOUR_AGO * 3 - step / 100)
    orphan_clean, orphan_rm = scratch_path(gone_clean), scratch_path(gone_rm)
    make_checkpoint(orphan_clean / 'run', 'checkpoint-7')
    git('worktree', 'remove', gone_clean, cwd=inited_repo)       # removal path 1
    shutil.rmtree(gone_rm)                                       # removal path 2
    git('worktree', 'prune', cwd=inited_repo)

    doc = status_json(inited_repo)
    assert len(doc['rows']) == 4
    main = row_for(doc, worktree=os.fspath(inited_repo))
    assert main['state'] == 'ok' and main['branch'] == 'main'
    live = row_for(doc, worktree=os.fspath(exp1))
    assert (live['state'], live['branch'], live['checkpoints']) == ('ok', 'exp1', 2)
    assert live['latest']['step'] == 10000 and live['latest']['age_seconds'] > HOUR_AGO
    assert live['size'] > 1_000_000
    for old, scratch_dir in ((gone_clean, orphan_clean), (gone_rm, orphan_rm)):
        row = row_for(doc, removed_worktree=os.fspath(old))
        assert row['state'] == 'orphaned' and row['worktree'] is None
        assert row['scratch_dir'] == os.fspath(scratch_dir)
    assert row_for(doc, removed_worktree=os.fspath(gone_clean))['checkpoints'] == 1
    assert doc['total_size'] == sum(r['size'] for r in doc['rows'])

    table = ckpt('status', cwd=inited_repo).stdout
    lines = table.splitlines()
    assert lines[0] == f'scratch root: {os.path.realpath(os.environ["GIT_CKPT_ROOT"])}'
    assert lines[1].split() == ['worktree', 'branch', 'scratch', 'dir', 'size', 'usage', 'ckpts', 'latest',
                                'state']
    assert f'removed: {gone_clean}' in table and f'removed: {gone_rm}' in table
    exp1_line = next(line for line in lines if line.startswith(os.fspath(exp1) + ' '))
    assert '10000 (' in exp1_line and 'h ago)' in exp1_line and exp1_line.rstrip().endswith('ok')
    assert '#' * 20 in exp1_line  # the biggest consumer has the full bar
    assert lines[-1].startswith('total ') and ' free of ' in lines[-1]
    assert '\x1b[' not in table  # not a TTY: plain text


def test_json_schema(inited_repo):
    make_checkpoint(scratch_path(inited_repo) / 'run', 'checkpoint-3',
                    state={'best_model_checkpoint': '/x/run/checkpoint-3'})
    doc = status_json(inited_repo)
    assert set(doc) == TOP_KEYS
    assert doc['schema'] == C.STATUS_JSON_SCHEMA == 1
    assert isinstance(doc['free_bytes'], int) and isinstance(doc['filesystem_bytes'], int)
    [row] = doc['rows']
    assert set(row) == ROW_KEYS
    assert set(row['latest']) == {'name', 'step', 'path', 'mtime', 'age_seconds'}
    [run] = row['runs']
    assert set(run) == {'path', 'size', 'best', 'checkpoints'} and run['best'] == 'checkpoint-3'
    [cp] = run['checkpoints']
    assert cp == {'name': 'checkpoint-3', 'step': 3, 'kind': 'hf', 'size': cp['size'], 'mtime': cp['mtime'],
                  'complete': True, 'in_progress': False}
    assert isinstance(cp['size'], int) and cp['size'] > 0


def test_all_lists_every_repository_under_the_root(hermetic, inited_repo):
    other = make_repo(hermetic.tmp / 'projects' / 'other')
    ckpt('init', cwd=other)
    make_checkpoint(scratch_path(other) / 'run', 'checkpoint-1')
    only_here = status_json(inited_repo)
    assert {r['worktree'] for r in only_here['rows']} == {os.fspath(inited_repo)}
    everything = status_json(inited_repo, '--all')
    assert {r['worktree'] for r in everything['rows']} == {os.fspath(inited_repo), os.fspath(other)}
    assert len({r['project'] for r in everything['rows']}) == 2
    # --all works outside any repository too.
    outside = ckpt('status', '--all', '--json', cwd=hermetic.tmp)
    assert len(json.loads(outside.stdout)['rows']) == 2


def test_all_with_a_deleted_repository_shows_its_dirs_as_orphans(hermetic, inited_repo):
    other = make_repo(hermetic.tmp / 'projects' / 'other')
    ckpt('init', cwd=other)
    other_scratch = scratch_path(other)
    shutil.rmtree(other)
    doc = status_json(inited_repo, '--all')
    row = row_for(doc, scratch_dir=os.fspath(other_scratch))
    assert row['state'] == 'orphaned' and row['removed_worktree'] == os.fspath(other)


def test_no_dir_and_in_progress_states(inited_repo):
    exp1 = add_worktree(inited_repo, inited_repo.parent / 'exp1')
    shutil.rmtree(scratch_path(exp1))
    make_checkpoint(scratch_path(inited_repo) / 'run', 'tmp-checkpoint-5', state=None, age=1)
    doc = status_json(inited_repo)
    assert row_for(doc, worktree=os.fspath(exp1))['state'] == 'no dir'
    assert row_for(doc, worktree=os.fspath(inited_repo))['state'] == 'in progress'
    table = ckpt('status', cwd=inited_repo).stdout
    assert 'no dir' in table and 'in progress' in table


def test_worktree_added_without_hooks_has_no_dir(inited_repo):
    wt = inited_repo.parent / 'nohook'
    git('-c', 'core.hooksPath=/dev/null', 'worktree', 'add', '-q', wt, cwd=inited_repo)
    row = row_for(status_json(inited_repo), worktree=os.fspath(wt))
    assert row['state'] == 'no dir' and row['scratch_dir'] is None and row['size'] == 0


def test_what_cannot_be_read_is_shown_and_said(inited_repo):
    run_dir = scratch_path(inited_repo) / 'run'
    make_checkpoint(run_dir, 'checkpoint-1')
    make_checkpoint(run_dir, 'checkpoint-abc')
    make_checkpoint(run_dir, 'checkpoint-2', state='{broken')
    proc = ckpt('status', cwd=inited_repo)
    assert 'Traceback' not in proc.stderr
    warnings = proc.stderr.splitlines()
    assert any(w.startswith('git-ckpt: warning: ') and 'checkpoint-abc' in w for w in warnings)
    assert any('checkpoint-2' in w and 'corrupt' in w for w in warnings)
    [row] = status_json(inited_repo)['rows']
    assert row['checkpoints'] == 2 and len(row['problems']) == 2


def test_vanished_root(hermetic, inited_repo):
    shutil.rmtree(hermetic.root)
    proc = ckpt('status', cwd=inited_repo)
    assert 'no dir' in proc.stdout and os.fspath(inited_repo) in proc.stdout
    [warning] = proc.stderr.splitlines()
    assert 'does not exist' in warning and os.fspath(hermetic.root) in warning
    doc = status_json(inited_repo)
    assert doc['rows'][0]['state'] == 'no dir' and doc['free_bytes'] is None
    assert_error(ckpt('status', '--all', cwd=inited_repo, check=False), 'does not exist')


def test_outside_a_repository(hermetic):
    assert_error(ckpt('status', cwd=hermetic.tmp, check=False), 'not inside a git repository')


def _status_on_a_tty(cwd: Path, env: dict) -> str:
    import pty
    main_fd, sub_fd = pty.openpty()
    proc = subprocess.Popen(['git', 'ckpt', 'status'], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=sub_fd, stderr=subprocess.DEVNULL)
    os.close(sub_fd)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main_fd)
    return b''.join(chunks).decode(errors='replace')


def test_rich_table_on_a_tty_respects_no_color(inited_repo):
    make_checkpoint(scratch_path(inited_repo) / 'run', 'checkpoint-1')
    env = {**os.environ, 'COLUMNS': '200', 'TERM': 'xterm-256color'}
    env.pop('NO_COLOR', None)
    colored = _status_on_a_tty(inited_repo, env)
    assert '█' in colored and 'scratch root:' in colored
    assert '\x1b[32m' in colored or '\x1b[32;' in colored or '\x1b[38;5;2m' in colored  # green "ok"
    plain = _status_on_a_tty(inited_repo, {**env, 'NO_COLOR': '1'})
    assert '█' in plain and 'ok' in plain
    assert '\x1b[32m' not in plain and '\x1b[38;5;2m' not in plain


# --- issue 8, scenario 6: a worktree dir deleted by hand, not yet pruned ---------

def test_status_says_when_a_worktree_dir_is_gone(inited_repo):
    import json as _json
    import shutil as _shutil
    from conftest import add_worktree
    wt = add_worktree(inited_repo, inited_repo.parent / 'wt-del')
    _shutil.rmtree(wt)
    proc = ckpt('status', '--json', cwd=inited_repo)
    (row,) = [r for r in _json.loads(proc.stdout)['rows'] if r['worktree'] == os.fspath(wt)]
    assert any('is gone' in p and 'git worktree prune' in p for p in row['problems']), row
    assert 'is gone' in proc.stderr and proc.stderr.count('\n') == 1
