"""`git ckpt remove`, `git ckpt gc` and the orphan notice, with real worktrees,
real hooks and a real terminal (a pty) for the prompts."""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ckpt, git, scratch_path
from test_archive import TODAY, digest_without_manifest, fill
from test_transfer import tree_digest

from git_ckpt import transfer


def worktrees(repo: Path) -> list[str]:
    out = git('worktree', 'list', '--porcelain', cwd=repo).stdout
    return [line.split(' ', 1)[1] for line in out.splitlines() if line.startswith('worktree ')]


def add_worktree(repo: Path, name: str) -> tuple[Path, Path]:
    git('worktree', 'add', '-q', f'../{name}', cwd=repo)
    wt = repo.parent / name
    scratch = scratch_path(wt)
    fill(scratch)
    return wt, scratch


def run_in_pty(args, cwd, answers: list[tuple[str, str]], timeout: float = 60) -> tuple[int, str]:
    """Run a command on a real terminal; when the output shows answers[i][0]
    (after the previous answer), type answers[i][1]."""
    master, slave = os.openpty()
    proc = subprocess.Popen([os.fspath(a) for a in args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    output, seen_upto, pending = b'', 0, list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and pending[0][0].encode() in output[seen_upto:]:
                seen_upto = len(output)
                os.write(master, pending.pop(0)[1].encode())
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(master)
    return proc.returncode, output.decode(errors='replace').replace('\r\n', '\n')


def test_remove_archive(inited_repo, hermetic):
    wt, scratch = add_worktree(inited_repo, 'exp1')
    before = tree_digest(scratch)
    out = ckpt('remove', '--archive', '../exp1', cwd=inited_repo).stdout
    assert '2 checkpoints in 1 run' in out and 'run1: 2 checkpoints' in out
    assert f'removed worktree {wt}' in out
    assert os.fspath(wt) not in worktrees(inited_repo) and not wt.exists()
    dest = hermetic.root / 'archive' / f'exp1-{TODAY}'
    assert not scratch.exists()
    assert digest_without_manifest(dest) == before
    assert transfer.verify(dest) == []


def test_remove_archive_across_filesystems_deletes_only_after_verification(inited_repo, hermetic):
    from test_archive import SHM
    dest_root = SHM / f'git-ckpt-remove-test-{os.getpid()}'
    git('config', 'ckpt.archiveDir', os.fspath(dest_root), cwd=inited_repo)
    try:
        wt, scratch = add_worktree(inited_repo, 'exp1')
        before = tree_digest(scratch)
        out = ckpt('remove', '--archive', 'exp1', cwd=inited_repo).stdout
        assert '(copy, 5 files' in out and 'verified' in out
        assert not scratch.exists()
        assert digest_without_manifest(dest_root / f'exp1-{TODAY}') == before
    finally:
        shutil.rmtree(dest_root, ignore_errors=True)


def test_remove_delete_never_follows_symlinks(inited_repo, hermetic):
    wt, scratch = add_worktree(inited_repo, 'exp1')
    precious = hermetic.tmp / 'precious'
    precious.mkdir()
    (precious / 'data.bin').write_bytes(b'keep me')
    (scratch / 'link-to-precious').symlink_to(precious)
    out = ckpt('remove', '--delete', 'exp1', cwd=inited_repo).stdout
    assert f'deleted {scratch}' in out
    assert not scratch.exists() and not wt.exists()
    assert (precious / 'data.bin').read_bytes() == b'keep me'


@pytest.mark.parametrize('flags', [['--keep'], []])
def test_remove_keep_and_no_tty_keep(inited_repo, flags):
    wt, scratch = add_worktree(inited_repo, 'exp1')
    before = tree_digest(scratch)
    proc = ckpt('remove', *flags, 'exp1', cwd=inited_repo, stdin=subprocess.DEVNULL)
    assert not wt.exists()
    assert tree_digest(scratch) == before
    assert 'deal with it later: git ckpt gc --archive (or --delete)' in proc.stdout
    if not flags:
        assert 'no terminal to ask' in proc.stdout
    assert 'exp1' in ckpt('gc', '--dry-run', cwd=inited_repo).stdout


def test_dirty_worktree_refusal_stands_and_scratch_is_untouched(inited_repo):
    wt, scratch = add_worktree(inited_repo, 'exp1')
    (wt / 'README').write_text('edited, not committed\n')
    before = tree_digest(scratch)
    for action in ('--archive', '--delete', '--keep'):
        proc = ckpt('remove', action, 'exp1', cwd=inited_repo, check=False)
        assert proc.returncode == 1
        err = proc.stderr.strip()
        assert err.startswith('git-ckpt: error: git worktree remove refused:') and len(err.splitlines()) == 1
        assert 'the worktree and its scratch dir are left as they were' in err and '--force' in err
        assert wt.is_dir() and os.fspath(wt) in worktrees(inited_repo)
        assert tree_digest(scratch) == before
    ckpt('remove', '--force', '--delete', 'exp1', cwd=inited_repo)
    assert not wt.exists() and not scratch.exists()


def test_remove_refuses_main_worktree_and_strangers(inited_repo, hermetic):
    cases = [
        (os.fspath(inited_repo), 'is the main worktree'),
        (os.fspath(hermetic.tmp), 'is not a worktree of proj'),
        ('no-such-worktree', 'is not a worktree of proj'),
    ]
    other = hermetic.tmp / 'other'
    git('init', '-q', other)
    cases.append((os.fspath(other), 'is a worktree of another repository'))
    for arg, message in cases:
        proc = ckpt('remove', '--delete', arg, cwd=inited_repo, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and message in lines[0], (arg, proc.stderr)
    assert inited_repo.is_dir()


def test_remove_dry_run_changes_nothing(inited_repo, hermetic):
    wt, scratch = add_worktree(inited_repo, 'exp1')
    before = tree_digest(scratch)
    out = ckpt('remove', '--archive', '--dry-run', 'exp1', cwd=inited_repo).stdout
    assert f'would run: git worktree remove {wt}' in out
    assert f'would archive {scratch}' in out and 'rename: same filesystem' in out
    assert wt.is_dir() and tree_digest(scratch) == before
    assert not (hermetic.root / 'archive').exists()


def test_remove_prompt_on_a_terminal(inited_repo, hermetic):
    wt1, scratch1 = add_worktree(inited_repo, 'exp1')
    before = tree_digest(scratch1)
    code, out = run_in_pty(['git', 'ckpt', 'remove', 'exp1'], inited_repo, [('[c]ancel', 'c\n')])
    assert code == 1 and 'cancelled; nothing changed' in out
    assert wt1.is_dir() and tree_digest(scratch1) == before
    code, out = run_in_pty(['git', 'ckpt', 'remove', 'exp1'], inited_repo, [('[c]ancel', 'a\n')])
    assert code == 0, out
    assert not wt1.exists() and not scratch1.exists()
    assert digest_without_manifest(hermetic.root / 'archive' / f'exp1-{TODAY}') == before
    wt2, scratch2 = add_worktree(inited_repo, 'exp2')
    code, out = run_in_pty(['git', 'ckpt', 'remove', 'exp2'], inited_repo,
                           [('[c]ancel', 'd\n'), ('for good?', 'y\n')])
    assert code == 0, out
    assert not wt2.exists() and not scratch2.exists()


@pytest.fixture
def three_orphans(inited_repo):
    """Orphans made the three ways a worktree goes."""
    wt1, s1 = add_worktree(inited_repo, 'exp1')
    git('worktree', 'remove', '--force', wt1, cwd=inited_repo)            # 1. git worktree remove
    wt2, s2 = add_worktree(inited_repo, 'exp2')
    shutil.rmtree(wt2)                                                     # 2. rm -rf + prune
    git('worktree', 'prune', cwd=inited_repo)
    wt3, s3 = add_worktree(inited_repo, 'exp3')
    git('worktree', 'remove', '--force', wt3, cwd=inited_repo)            # 3. removed, then
    git('worktree', 'add', '-q', '../exp3', cwd=inited_repo)              #    re-added by name
    new3 = scratch_path(inited_repo.parent / 'exp3')
    assert new3 != s3
    return [s1, s2, s3], new3


def test_gc_finds_orphans_of_every_kind(inited_repo, three_orphans):
    orphans, new3 = three_orphans
    before = {s: tree_digest(s) for s in orphans}
    out = ckpt('gc', '--dry-run', cwd=inited_repo).stdout
    for s in orphans:
        assert os.fspath(s) in out
    assert os.fspath(new3) not in out
    assert '3 orphaned scratch dirs' in out
    assert {s: tree_digest(s) for s in orphans} == before
    out = ckpt('gc', '--delete', '--dry-run', cwd=inited_repo).stdout
    assert out.count('would delete') == 3
    out = ckpt('gc', cwd=inited_repo, stdin=subprocess.DEVNULL).stdout  # no terminal, no flag
    assert 'nothing done' in out
    assert all(s.exists() for s in orphans)


def test_gc_delete_and_archive(inited_repo, hermetic, three_orphans):
    orphans, new3 = three_orphans
    before = tree_digest(orphans[0])
    ckpt('gc', '--archive', cwd=inited_repo)
    archives = sorted(os.listdir(hermetic.root / 'archive'))
    assert archives == [f'exp1-{TODAY}', f'exp2-{TODAY}', f'exp3-{TODAY}']
    assert digest_without_manifest(hermetic.root / 'archive' / f'exp1-{TODAY}') == before
    assert not any(s.exists() for s in orphans)
    assert new3.is_dir()                      # the live worktree's dir is untouched
    assert 'no orphaned scratch dirs' in ckpt('gc', '--delete', '--yes', cwd=inited_repo).stdout


def test_gc_delete_yes(inited_repo, three_orphans):
    orphans, new3 = three_orphans
    out = ckpt('gc', '--delete', '--yes', cwd=inited_repo).stdout
    assert out.count('deleted ') == 3
    assert not any(s.exists() for s in orphans)
    assert new3.is_dir()


def test_gc_asks_for_each_on_a_terminal(inited_repo, hermetic, three_orphans):
    orphans, _ = three_orphans
    code, out = run_in_pty(['git', 'ckpt', 'gc'], inited_repo,
                           [('[c]ancel', 'k\n'), ('[c]ancel', 'd\n'), ('[c]ancel', 'c\n')])
    assert code == 0, out
    assert [s.exists() for s in orphans] == [True, False, True]


def test_orphan_notice_after_a_command_at_most_once_a_day(inited_repo, hermetic, three_orphans):
    state = hermetic.root / '.git-ckpt' / 'orphan-notice'
    # Re-adding exp3 ran the hook, which already gave today's notice (count only).
    assert len(list(state.iterdir())) == 1
    assert 'of removed worktrees' not in ckpt('prune', '--keep', '1', '--dry-run', cwd=inited_repo).stderr
    shutil.rmtree(state)
    proc = ckpt('prune', '--keep', '1', '--dry-run', cwd=inited_repo)
    notice = [line for line in proc.stderr.splitlines() if 'of removed worktrees' in line]
    assert len(notice) == 1
    assert notice[0].startswith('git-ckpt: 3 scratch dirs (') and 'run `git ckpt gc`' in notice[0]
    again = ckpt('prune', '--keep', '1', '--dry-run', cwd=inited_repo)
    assert 'of removed worktrees' not in again.stderr
    [state_file] = state.iterdir()
    data = json.loads(state_file.read_text())
    data['shown'] -= 25 * 3600   # a day later
    state_file.write_text(json.dumps(data))
    assert 'of removed worktrees' in ckpt('prune', '--keep', '1', '--dry-run', cwd=inited_repo).stderr


def test_orphan_notice_in_the_post_checkout_hook(inited_repo, hermetic):
    wt, scratch = add_worktree(inited_repo, 'exp1')
    git('worktree', 'remove', '--force', wt, cwd=inited_repo)
    proc = git('worktree', 'add', '-q', '../exp2', cwd=inited_repo)
    lines = [line for line in proc.stderr.splitlines() if 'of removed worktrees' in line]
    # No size walk on the hook path: nothing measured yet, so the count only.
    assert lines == ['git-ckpt: 1 scratch dir of removed worktrees is still on scratch; '
                     'run `git ckpt gc` to archive or delete it']
    assert 'of removed worktrees' not in git('worktree', 'add', '-q', '../exp3', cwd=inited_repo).stderr


def test_no_notice_without_orphans(inited_repo):
    add_worktree(inited_repo, 'exp1')
    assert 'removed worktrees' not in ckpt('prune', '--keep', '1', '--dry-run', cwd=inited_repo).stderr


def test_progress_bar_with_bytes_per_second_on_a_terminal(inited_repo, tmp_path):
    from test_archive import SHM
    wt, scratch = add_worktree(inited_repo, 'exp1')
    fill(scratch, 'run2', steps=(1, 2), size=32 << 20)
    dest = SHM / f'git-ckpt-progress-test-{os.getpid()}'
    try:
        code, out = run_in_pty(['git', 'ckpt', 'archive', '--to', dest], wt, [])
        assert code == 0, out
        assert 'copying to exp1-' in out and '/s' in out   # rich's TransferSpeedColumn
        assert transfer.verify(dest / f'exp1-{TODAY}') == []
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_archive_failing_after_git_removed_the_worktree_leaves_an_intact_orphan(inited_repo, tmp_path):
    small = tmp_path / 'small'
    small.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs (needs root): {proc.stderr.strip()}')
    try:
        git('config', 'ckpt.archiveDir', os.fspath(small), cwd=inited_repo)
        wt, scratch = add_worktree(inited_repo, 'exp1')
        before = tree_digest(scratch)
        proc = ckpt('remove', '--archive', 'exp1', cwd=inited_repo, check=False)
        assert proc.returncode == 1
        err = proc.stderr.strip()
        assert err.startswith('git-ckpt: error: the worktree was removed, but its scratch dir was not archived: '
                              'not enough space')
        assert f'{scratch} is intact; retry with git ckpt gc --archive' in err
        assert not wt.exists() and tree_digest(scratch) == before
        assert os.fspath(scratch) in ckpt('gc', '--dry-run', cwd=inited_repo).stdout
    finally:
        subprocess.run(['umount', '-l', small], check=False)


def test_gc_whose_list_is_stale_skips_what_another_gc_took(inited_repo, hermetic, three_orphans, capsys):
    # Two gc at once: both list the orphans, then take each one's lock in
    # turn.  What the other took first is gone by then: say so, do not fail
    # (it used to be "cannot open scratch dir ...: No such file or directory").
    from git_ckpt import archive, targets, worktree
    from git_ckpt.commands.remove import _apply
    from git_ckpt.settings import load_settings
    orphans, new3 = three_orphans
    here = worktree.current_worktree(inited_repo)
    stale = targets.orphans(worktree.locate(here).project_dir, here.common_dir)
    assert sorted(o.scratch_dir for o in stale) == sorted(orphans)
    ckpt('gc', '--delete', '--yes', cwd=inited_repo)     # the other gc
    settings = load_settings(inited_repo)
    dest_root = lambda: archive.archive_root(None, settings, hermetic.root)  # noqa: E731
    for orphan in stale:
        _apply('delete', orphan.scratch_dir, orphan.manifest, dest_root)
        _apply('archive', orphan.scratch_dir, orphan.manifest, dest_root)
    out = capsys.readouterr().out
    assert out.count('is not there any more') == 6
    assert not (hermetic.root / 'archive').exists() or os.listdir(hermetic.root / 'archive') == []
    assert new3.is_dir()
