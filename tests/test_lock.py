"""The scratch dir lock (issue 4, section 3): two real processes contend."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_error, ckpt, make_checkpoint, scratch_path
from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.lock import lock_path, read_holder, scratch_lock

HOLD = '''
import sys, time
from pathlib import Path
from git_ckpt.lock import scratch_lock
with scratch_lock(Path(sys.argv[1]), sys.argv[2]):
    print('locked', flush=True)
    sys.stdin.read()          # hold until the test closes stdin (or kills us)
    time.sleep(float(sys.argv[3]))
'''


class Holder:
    """Another process holding the lock of a scratch dir."""

    def __init__(self, scratch_dir: Path, command: str = 'archive', linger: float = 0.0) -> None:
        self.proc = subprocess.Popen([sys.executable, '-c', HOLD, os.fspath(scratch_dir), command, str(linger)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == 'locked'

    def release(self) -> None:
        self.proc.stdin.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def holder_factory():
    holders = []

    def make(*args, **kwargs) -> Holder:
        holders.append(Holder(*args, **kwargs))
        return holders[-1]
    yield make
    for holder in holders:
        holder.stop()


@pytest.fixture
def wt_scratch(inited_repo) -> Path:
    return scratch_path(inited_repo)


def test_contention_names_the_holder(inited_repo, wt_scratch, holder_factory):
    for step in (1, 2, 3):
        make_checkpoint(wt_scratch / 'run', f'checkpoint-{step}', age=3600 - step)
    holder = holder_factory(wt_scratch, 'archive')
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo, check=False)
    line = assert_error(proc, 'in use by', '`git ckpt archive`', f'pid {holder.proc.pid}', socket.gethostname(),
                        'started')
    assert 'wait for it to finish' in line
    assert len(os.listdir(wt_scratch / 'run')) == 3  # nothing deleted
    # A dry run only reads: it does not need the lock.
    ckpt('prune', '--keep', '1', '--dry-run', cwd=inited_repo)
    with pytest.raises(GitCkptError, match=f'pid {holder.proc.pid}'):
        with scratch_lock(wt_scratch, 'gc'):
            pass
    holder.release()
    holder.proc.wait(timeout=10)
    ckpt('prune', '--keep', '1', cwd=inited_repo)
    assert os.listdir(wt_scratch / 'run') == ['checkpoint-3']


def test_killed_holder_leaves_no_stale_lock(wt_scratch, holder_factory):
    holder = holder_factory(wt_scratch, 'migrate')
    os.kill(holder.proc.pid, signal.SIGKILL)
    holder.proc.wait(timeout=10)
    with scratch_lock(wt_scratch, 'prune') as path:
        assert read_holder(path).pid == os.getpid()
        assert read_holder(path).command == 'prune'


def test_wait_until_released_and_timeout(wt_scratch, holder_factory):
    holder = holder_factory(wt_scratch, 'gc', linger=0.5)
    with pytest.raises(GitCkptError, match='`git ckpt gc`'):
        with scratch_lock(wt_scratch, 'prune', wait=True, timeout=0.3):
            pass
    holder.release()  # lets go about half a second later
    start = time.monotonic()
    with scratch_lock(wt_scratch, 'prune', wait=True, timeout=30):
        assert holder.proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 30


def test_lock_file_lives_in_the_root_state_dir(hermetic, inited_repo, wt_scratch):
    with scratch_lock(wt_scratch, 'prune') as path:
        assert path == lock_path(wt_scratch)
        assert path.is_relative_to(hermetic.root / C.STATE_DIR / C.LOCK_DIR)
        assert not path.is_relative_to(wt_scratch) and not path.is_relative_to(inited_repo)
        assert (path.stat().st_mode & 0o777) == 0o600
    # Released: no holder to name any more.
    assert read_holder(path) is None


def test_locks_are_per_scratch_dir(inited_repo, wt_scratch, holder_factory):
    from conftest import add_worktree
    other = scratch_path(add_worktree(inited_repo, inited_repo.parent / 'exp1'))
    holder_factory(wt_scratch, 'archive')
    with scratch_lock(other, 'prune'):
        pass


def test_unmanaged_dir_cannot_be_locked(tmp_path):
    with pytest.raises(GitCkptError, match='not a scratch dir managed by git-ckpt'):
        with scratch_lock(tmp_path, 'prune'):
            pass


# --- issue 8, scenario 5: a lock file planted by someone else -------------------

def test_a_symlink_planted_for_the_lock_file_is_refused(wt_scratch, tmp_path):
    path = lock_path(wt_scratch)
    target = tmp_path / 'victim'
    target.write_text('untouched\n')
    path.symlink_to(target)
    with pytest.raises(GitCkptError, match='is a symlink where git-ckpt expects its own file'):
        with scratch_lock(wt_scratch, 'prune'):
            pass
    assert target.read_text() == 'untouched\n'


def test_a_lock_file_owned_by_another_user_is_not_written(wt_scratch, unprivileged_user):
    path = lock_path(wt_scratch)
    path.write_text('theirs\n')
    os.chown(path, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    with pytest.raises(GitCkptError, match=f'owned by {unprivileged_user.pw_name}, not you'):
        with scratch_lock(wt_scratch, 'prune'):
            pass
    assert path.read_text() == 'theirs\n'


@pytest.mark.parametrize('linked', ['scratch dir', 'project dir'])
def test_no_state_outside_the_root_through_a_symlinked_scratch_dir(hermetic, wt_scratch, linked):
    """Found by tests/faults/test_containment.py (minimized): the scratch dir
    replaced by a symlink to a copy of it outside the root; the lock (a
    realpath of the link) was created in <outside>/../.git-ckpt/locks."""
    import shutil
    real = wt_scratch if linked == 'scratch dir' else wt_scratch.parent
    outside = hermetic.tmp / 'outside'
    copy = outside / 'victims' / real.name
    shutil.copytree(real, copy, symlinks=True)
    os.rename(real, real.with_name('aside'))
    os.symlink(copy, real)
    with pytest.raises(GitCkptError, match='is a symlink where git-ckpt expects its own directory'):
        with scratch_lock(wt_scratch, 'prune'):
            pass
    assert sorted(p.name for p in outside.iterdir()) == ['victims']
    proc = ckpt('prune', '--keep', '1', cwd=hermetic.tmp / 'projects' / 'proj', check=False)
    assert proc.returncode == 1 and 'is a symlink' in proc.stderr and 'Traceback' not in proc.stderr
    assert sorted(p.name for p in outside.iterdir()) == ['victims']


def test_a_full_root_still_locks(hermetic, inited_repo, tmpfs_mount, monkeypatch):
    """On a 100% full root the holder's name cannot be written; the lock (an
    flock) still works, so prune and archive can free space (found by
    tests/faults/test_full_disk.py: they failed with 'No space left on device')."""
    root = tmpfs_mount('root', size='1m')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    scratch = Path(ckpt('path', cwd=inited_repo).stdout.strip())
    with scratch_lock(scratch, 'prune'):
        pass   # creates the lock file while there is room
    with open(root / 'filler', 'wb') as f:
        try:
            f.write(b'\0' * (2 << 20))
        except OSError:
            pass
    assert os.statvfs(root).f_bavail == 0
    with scratch_lock(scratch, 'prune') as path:
        with pytest.raises(GitCkptError, match='is in use by another git-ckpt process'):
            with scratch_lock(scratch, 'archive'):
                pass
    assert path.exists()


def test_prune_meeting_an_archive_mid_rename_names_the_holder(inited_repo, wt_scratch, holder_factory):
    """archive renames the scratch dir away and re-creates it under the lock:
    prune must meet the lock, not call the (momentarily) manifest-less dir
    unmanaged.  Here the holder keeps the dir without its manifest."""
    make_checkpoint(wt_scratch / 'run', 'checkpoint-1', age=3600)
    holder = holder_factory(wt_scratch, 'archive')
    manifest = wt_scratch / C.MANIFEST_NAME
    manifest.rename(wt_scratch.parent / 'manifest-aside')
    try:
        proc = ckpt('prune', '--keep', '1', cwd=inited_repo, check=False)
        assert_error(proc, 'in use by', '`git ckpt archive`')
    finally:
        (wt_scratch.parent / 'manifest-aside').rename(manifest)
    holder.release()
    # Not managed for real (no lock held): the usual refusal, nothing deleted.
    manifest.rename(wt_scratch.parent / 'manifest-aside')
    proc = ckpt('prune', '--keep', '1', cwd=inited_repo, check=False)
    assert_error(proc, 'not a scratch dir managed by git-ckpt', 'nothing was deleted')
    assert (wt_scratch / 'run' / 'checkpoint-1').is_dir()
