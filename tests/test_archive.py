"""`git ckpt archive` and `git ckpt restore` with real worktrees, real
filesystems (/tmp vs the /dev/shm tmpfs) and real processes."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ckpt, git, run, scratch_path
from conftest import run as run_cli
from test_transfer import SHM, tree_digest

from git_ckpt import transfer
from git_ckpt.safe_delete import remove_tree

TODAY = time.strftime('%Y-%m-%d')


def fill(scratch: Path, run_name: str = 'run1', steps=(10, 20), size: int = 1 << 20) -> None:
    """HF-style checkpoints: <run>/checkpoint-<step>/{model.safetensors, trainer_state.json}."""
    for step in steps:
        ck = scratch / run_name / f'checkpoint-{step}'
        ck.mkdir(parents=True)
        (ck / 'model.safetensors').write_bytes(os.urandom(size))
        (ck / 'trainer_state.json').write_text(json.dumps({'global_step': step}))


def digest_without_manifest(tree: Path) -> dict:
    d = tree_digest(tree)
    d.pop(transfer.MANIFEST, None)
    return d


@pytest.fixture
def exp1(inited_repo):
    """A linked worktree `exp1` with two checkpoints in its scratch dir."""
    git('worktree', 'add', '-q', '../exp1', cwd=inited_repo)
    wt = inited_repo.parent / 'exp1'
    scratch = scratch_path(wt)
    fill(scratch)
    return wt, scratch


@pytest.fixture
def shm_dest(tmp_path):
    if os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip('/dev/shm is on the same filesystem as the test dir')
    d = SHM / f'git-ckpt-archive-test-{os.getpid()}-{tmp_path.name}'
    yield d
    if d.exists():
        remove_tree(d)


def test_same_filesystem_archive_is_a_rename(exp1, hermetic):
    wt, scratch = exp1
    before = tree_digest(scratch)
    inode = os.stat(scratch / 'run1' / 'checkpoint-10' / 'model.safetensors').st_ino
    out = ckpt('archive', cwd=wt).stdout
    dest = hermetic.root / 'archive' / f'exp1-{TODAY}'
    assert f'-> {dest}  (rename' in out
    assert os.stat(dest / 'run1' / 'checkpoint-10' / 'model.safetensors').st_ino == inode
    assert digest_without_manifest(dest) == before
    assert transfer.verify(dest) == []
    # The live worktree keeps an empty managed scratch dir.
    assert scratch_path(wt) == scratch
    assert sorted(os.listdir(scratch)) == ['.git-ckpt.json']


def test_cross_filesystem_archive_copies_verifies_and_keeps_source(exp1, shm_dest):
    wt, scratch = exp1
    before = tree_digest(scratch)
    out = ckpt('archive', '--to', shm_dest, cwd=wt).stdout
    dest = shm_dest / f'exp1-{TODAY}'
    assert '(copy, 5 files' in out and 'verified' in out
    assert 'the source is kept' in out
    assert tree_digest(scratch) == before
    assert digest_without_manifest(dest) == before
    assert transfer.verify(dest) == []
    manifest = json.loads((dest / transfer.MANIFEST).read_text())
    assert manifest['meta']['kind'] == 'worktree' and manifest['meta']['worktree'] == os.fspath(wt)


def test_delete_source_only_after_verification(exp1, shm_dest):
    wt, scratch = exp1
    before = tree_digest(scratch)
    ckpt('archive', '--to', shm_dest, '--delete-source', cwd=wt)
    dest = shm_dest / f'exp1-{TODAY}'
    assert digest_without_manifest(dest) == before
    assert sorted(os.listdir(scratch)) == ['.git-ckpt.json']  # emptied, then re-created for the live worktree


def test_names_never_collide(exp1, shm_dest):
    wt, scratch = exp1
    ckpt('archive', '--to', shm_dest, cwd=wt)
    first = tree_digest(shm_dest / f'exp1-{TODAY}')
    (scratch / 'run1' / 'checkpoint-20' / 'extra.bin').write_bytes(b'new')
    out = ckpt('archive', '--to', shm_dest, cwd=wt).stdout
    assert f'exp1-{TODAY}-2' in out
    assert tree_digest(shm_dest / f'exp1-{TODAY}') == first       # never overwritten
    assert (shm_dest / f'exp1-{TODAY}-2' / 'run1' / 'checkpoint-20' / 'extra.bin').read_bytes() == b'new'


def test_archive_dir_from_git_config(exp1, shm_dest):
    wt, scratch = exp1
    git('config', 'ckpt.archiveDir', os.fspath(shm_dest), cwd=wt)
    ckpt('archive', cwd=wt)
    assert transfer.verify(shm_dest / f'exp1-{TODAY}') == []


def test_one_run_archive_and_restore(exp1, shm_dest):
    wt, scratch = exp1
    fill(scratch, 'run2', steps=(5,))
    run1 = tree_digest(scratch / 'run1')
    out = ckpt('archive', '--run', 'run1', '--to', shm_dest, '--delete-source', cwd=wt).stdout
    dest = shm_dest / f'exp1-run1-{TODAY}'
    assert os.fspath(dest) in out
    assert not (scratch / 'run1').exists() and (scratch / 'run2').is_dir()
    out = ckpt('restore', dest, cwd=wt).stdout
    assert 'verified' in out and 'the archive is kept' in out
    assert tree_digest(scratch / 'run1') == run1


def test_dry_run_changes_nothing(exp1, hermetic):
    wt, scratch = exp1
    before = tree_digest(scratch)
    out = ckpt('archive', '--dry-run', cwd=wt).stdout
    assert out.startswith(f'would archive {scratch}')
    assert 'rename: same filesystem' in out
    assert tree_digest(scratch) == before
    assert not (hermetic.root / 'archive').exists()


def test_orphans_are_archived(exp1, inited_repo, hermetic):
    wt, scratch = exp1
    git('worktree', 'remove', '--force', wt, cwd=inited_repo)
    before = tree_digest(scratch)
    out = ckpt('archive', '--orphans', cwd=inited_repo).stdout
    dest = hermetic.root / 'archive' / f'exp1-{TODAY}'
    assert os.fspath(dest) in out
    assert not scratch.exists()
    assert digest_without_manifest(dest) == before
    assert 'no orphaned scratch dirs' in ckpt('archive', '--orphans', cwd=inited_repo).stdout


def test_tar_zst_archive_verifies_and_restores(exp1, shm_dest):
    wt, scratch = exp1
    before = tree_digest(scratch / 'run1')
    out = ckpt('archive', '--format', 'tar.zst', '--to', shm_dest, '--delete-source', cwd=wt).stdout
    tar = shm_dest / f'exp1-{TODAY}.tar.zst'
    assert tar.is_file() and 'tar.zst' in out
    assert sorted(os.listdir(scratch)) == ['.git-ckpt.json']
    ckpt('restore', tar, cwd=wt)
    assert tree_digest(scratch / 'run1') == before
    # A damaged byte in the middle: restore refuses.
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    proc = ckpt('restore', '--force', tar, cwd=wt, check=False)
    assert proc.returncode == 1
    assert 'does not match its manifest' in proc.stderr and 'Traceback' not in proc.stderr


def test_restore_refuses_a_manifest_mismatch_naming_the_files(exp1, shm_dest):
    wt, scratch = exp1
    ckpt('archive', '--to', shm_dest, '--delete-source', cwd=wt)
    dest = shm_dest / f'exp1-{TODAY}'
    (dest / 'run1' / 'checkpoint-10' / 'model.safetensors').write_bytes(b'corrupted')
    (dest / 'run1' / 'checkpoint-20' / 'trainer_state.json').unlink()
    proc = ckpt('restore', dest, cwd=wt, check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1
    assert 'run1/checkpoint-10/model.safetensors (size 9' in err
    assert 'run1/checkpoint-20/trainer_state.json (missing)' in err
    assert sorted(os.listdir(scratch)) == ['.git-ckpt.json']   # nothing restored


def test_restore_refuses_to_overwrite_unless_forced(exp1, shm_dest):
    wt, scratch = exp1
    ckpt('archive', '--to', shm_dest, cwd=wt)             # copy: the source stays
    (scratch / 'run1' / 'checkpoint-20' / 'model.safetensors').write_bytes(b'newer work')
    proc = ckpt('restore', f'exp1-{TODAY}', cwd=wt, check=False)   # not in the default dir
    assert proc.returncode == 1 and 'no archive' in proc.stderr
    proc = ckpt('restore', shm_dest / f'exp1-{TODAY}', cwd=wt, check=False)
    assert proc.returncode == 1
    assert 'already has run1' in proc.stderr and '--force' in proc.stderr
    assert (scratch / 'run1' / 'checkpoint-20' / 'model.safetensors').read_bytes() == b'newer work'
    ckpt('restore', '--force', shm_dest / f'exp1-{TODAY}', cwd=wt)
    assert (scratch / 'run1' / 'checkpoint-20' / 'model.safetensors').stat().st_size == 1 << 20


def test_restore_into_another_worktree_by_name(exp1, inited_repo, hermetic):
    wt, scratch = exp1
    before = tree_digest(scratch / 'run1')
    ckpt('archive', cwd=wt)
    git('worktree', 'add', '-q', '../exp2', cwd=inited_repo)
    ckpt('restore', f'exp1-{TODAY}', 'exp2', cwd=inited_repo)   # a name in <root>/archive, a worktree name
    assert tree_digest(scratch_path(inited_repo.parent / 'exp2') / 'run1') == before
    assert not (hermetic.root / 'archive' / f'exp1-{TODAY}').exists()   # same filesystem: moved back


@pytest.mark.slow
def test_kill_9_mid_archive_then_rerun_completes(inited_repo, shm_dest):
    git('worktree', 'add', '-q', '../exp1', cwd=inited_repo)
    wt = inited_repo.parent / 'exp1'
    scratch = scratch_path(wt)
    fill(scratch, steps=range(1, 25), size=8 << 20)  # 24 x 8 MiB
    before = tree_digest(scratch)
    journal = shm_dest / f'exp1-{TODAY}.partial' / transfer.JOURNAL
    proc = subprocess.Popen(['git', 'ckpt', 'archive', '--to', os.fspath(shm_dest)], cwd=wt,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 4:
            break
        time.sleep(0.002)
    if proc.poll() is not None:
        pytest.fail('the archive finished before it could be killed')
    os.killpg(proc.pid, signal.SIGKILL)   # git and git-ckpt, like kill -9 of the job
    proc.wait()
    assert tree_digest(scratch) == before
    assert not (shm_dest / f'exp1-{TODAY}').exists()
    out = ckpt('archive', '--to', shm_dest, cwd=wt).stdout
    assert f'exp1-{TODAY}  (copy' in out and 'resumed from an interrupted run' in out
    dest = shm_dest / f'exp1-{TODAY}'
    assert transfer.verify(dest) == []
    assert digest_without_manifest(dest) == before
    assert tree_digest(scratch) == before
    assert not (shm_dest / f'exp1-{TODAY}.partial').exists()


@pytest.fixture
def mounted(tmp_path):
    mounts = []

    def mount(name: str, options: str) -> Path:
        mnt = tmp_path / name
        mnt.mkdir()
        proc = run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', mnt], check=False)
        if proc.returncode != 0:
            pytest.skip(f'cannot mount a tmpfs (needs root): {proc.stderr.strip()}')
        mounts.append(mnt)
        return mnt
    yield mount
    for mnt in mounts:
        run(['umount', '-l', mnt], check=False)


def test_destination_full_is_a_clear_error(exp1, mounted):
    wt, scratch = exp1
    small = mounted('small', 'size=2m')
    before = tree_digest(scratch)
    proc = ckpt('archive', '--to', small, '--delete-source', cwd=wt, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith('git-ckpt: error: not enough space on the filesystem of')
    assert 'the source is intact' in proc.stderr
    assert tree_digest(scratch) == before
    assert os.listdir(small) == []
    # Byte counts that fit but blocks that do not: ENOSPC in the middle of the copy.
    shutil.rmtree(scratch / 'run1')
    for i in range(800):
        (scratch / f'f{i:03d}').write_bytes(b'x' * 100)
    before = tree_digest(scratch)
    proc = ckpt('archive', '--to', small, '--delete-source', cwd=wt, check=False)
    assert proc.returncode == 1
    assert 'no space left on the filesystem of' in proc.stderr and 'Traceback' not in proc.stderr
    assert tree_digest(scratch) == before
    assert os.listdir(small) == []   # the partial copy was cleaned up


def test_read_only_destination_is_a_clear_error(exp1, mounted):
    wt, scratch = exp1
    ro = mounted('ro', 'ro,size=1m')
    proc = ckpt('archive', '--to', ro, cwd=wt, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f'git-ckpt: error: archive dir {ro} (--to) is not writable by you; '
                                   'choose a writable destination with --to DIR or fix its permissions')


USER_SCRIPT = '''
import sys
from pathlib import Path
from git_ckpt import transfer
from git_ckpt.errors import GitCkptError
try:
    transfer.transfer(Path(sys.argv[1]), Path(sys.argv[2]))
except GitCkptError as exc:
    print(exc)
    sys.exit(1)
'''


def test_not_writable_destination_for_an_unprivileged_user(unprivileged_user, shm_dest):
    """Root writes anywhere, so the copy runs as another user; it needs only
    the standard library, so the system python runs git_ckpt from the source."""
    python = shutil.which('python3', path='/usr/bin:/bin')
    if python is None:
        pytest.skip('no system python3 for the unprivileged user')
    base = Path(tempfile.mkdtemp(prefix='git-ckpt-user-'))
    try:
        os.chmod(base, 0o755)
        src = base / 'src'
        fill(src, steps=(1,), size=1000)
        for path in [src, *src.rglob('*')]:
            os.chown(path, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
        shm_dest.mkdir(mode=0o755)   # root's, not writable by the user
        before = tree_digest(src)
        package_dir = Path(transfer.__file__).resolve().parents[1]
        proc = run([shutil.which('runuser') or 'runuser', '-u', pwd.getpwuid(unprivileged_user.pw_uid).pw_name, '--',
                    python, '-c', USER_SCRIPT, src, shm_dest / 'archive'],
                   env={'PATH': '/usr/bin:/bin', 'PYTHONPATH': os.fspath(package_dir)}, check=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout.strip() == (f'cannot write to {shm_dest}: Permission denied; choose a writable '
                                       'destination (--to DIR) or fix its permissions')
        assert tree_digest(src) == before
        assert os.listdir(shm_dest) == []
    finally:
        shutil.rmtree(base)


def test_bad_input_is_one_line(exp1, inited_repo, tmp_path):
    wt, scratch = exp1
    cases = [
        (['archive', '--run', '../x'], 'is not a path inside the scratch dir'),
        (['archive', '--run', 'nope'], 'no run dir'),
        (['archive', '--orphans', 'exp1'], 'takes no WORKTREE'),
        (['archive', os.fspath(tmp_path)], 'is not a worktree of proj'),
        (['restore', os.fspath(tmp_path / 'missing')], 'no archive'),
        (['restore', os.fspath(tmp_path)], 'does not match its manifest'),
    ]
    for args, message in cases:
        proc = ckpt(*args, cwd=wt, check=False)
        assert proc.returncode != 0, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and lines[0].startswith('git-ckpt: error:'), (args, proc.stderr)


def test_progress_is_silent_without_a_tty(exp1, shm_dest):
    wt, scratch = exp1
    proc = ckpt('archive', '--to', shm_dest, cwd=wt)
    assert proc.stderr == ''
    assert sys.stderr is not None


def test_tar_zst_partial_from_a_killed_run_is_restarted_under_its_name(exp1, shm_dest, tmp_path):
    wt, scratch = exp1
    ckpt('archive', '--format', 'tar.zst', '--to', tmp_path / 'first', cwd=wt)
    whole = (tmp_path / 'first' / f'exp1-{TODAY}.tar.zst').read_bytes()
    shm_dest.mkdir()
    partial = shm_dest / f'exp1-{TODAY}.tar.zst.partial'
    partial.write_bytes(whole[:len(whole) // 2])      # what a kill -9 leaves behind
    out = ckpt('archive', '--format', 'tar.zst', '--to', shm_dest, cwd=wt).stdout
    assert f'-> {shm_dest}/exp1-{TODAY}.tar.zst  (tar.zst' in out
    assert sorted(os.listdir(shm_dest)) == [f'exp1-{TODAY}.tar.zst']
    from git_ckpt import tarzst
    assert tarzst.verify(shm_dest / f'exp1-{TODAY}.tar.zst')[0] == []


LOCK_HOLDER = '''
import sys, time
from pathlib import Path
from git_ckpt.lock import scratch_lock
with scratch_lock(Path(sys.argv[1]), 'prune'):
    print('locked', flush=True)
    time.sleep(60)
'''


def test_archive_waits_for_no_one_it_names_the_lock_holder(exp1, shm_dest):
    wt, scratch = exp1
    holder = subprocess.Popen([sys.executable, '-c', LOCK_HOLDER, scratch], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        proc = ckpt('archive', '--to', shm_dest, cwd=wt, check=False)
        assert proc.returncode == 1
        assert f'{scratch} is in use by `git ckpt prune` (pid {holder.pid}' in proc.stderr
        assert not shm_dest.exists() or os.listdir(shm_dest) == []
    finally:
        holder.kill()
        holder.wait()
    ckpt('archive', '--to', shm_dest, cwd=wt)


# --- issue 8, scenario 5: an archive dir someone else owns, parents made 0700 -----


def test_archive_dir_of_another_user_is_refused(inited_repo, unprivileged_user, tmp_path):
    from conftest import assert_error
    theirs = tmp_path / 'their-archives'
    theirs.mkdir(mode=0o777)
    os.chown(theirs, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    git('config', 'ckpt.archiveDir', os.fspath(theirs), cwd=inited_repo)
    (scratch_path(inited_repo) / 'run1').mkdir()
    assert_error(ckpt('archive', cwd=inited_repo, check=False), os.fspath(theirs),
                 f'owned by {unprivileged_user.pw_name}')
    assert list(theirs.iterdir()) == []


def test_archive_to_creates_missing_parents_0700(inited_repo, tmp_path):
    (scratch_path(inited_repo) / 'run1').mkdir()
    dest = tmp_path / 'a' / 'b' / 'archives'
    run(['sh', '-c', 'umask 000 && exec "$@"', 'sh', 'git', 'ckpt', 'archive', '--to', dest], cwd=inited_repo)
    for path in (tmp_path / 'a', tmp_path / 'a' / 'b', dest):
        assert oct(path.stat().st_mode & 0o777) == oct(0o700), path


def test_archive_while_another_archive_moves_the_dir_names_that_archive(exp1, hermetic):
    # Another `git ckpt archive` holds the lock and has renamed the scratch dir
    # away; it makes the dir again before letting go.  We used to read the
    # missing manifest before taking the lock and said "no scratch dir yet".
    wt, scratch = exp1
    moved = hermetic.root / 'moving'
    os.rename(scratch, moved)
    holder = subprocess.Popen([sys.executable, '-c', LOCK_HOLDER.replace("'prune'", "'archive'"), scratch],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        proc = ckpt('archive', cwd=wt, check=False)
        assert proc.returncode == 1 and 'Traceback' not in proc.stderr
        assert proc.stderr.splitlines() == [line for line in proc.stderr.splitlines()
                                            if f'{scratch} is in use by `git ckpt archive` (pid {holder.pid}' in line]
        assert not (hermetic.root / 'archive').exists() or os.listdir(hermetic.root / 'archive') == []
    finally:
        holder.kill()
        holder.wait()
    os.rename(moved, scratch)
    ckpt('archive', cwd=wt)
    assert os.listdir(hermetic.root / 'archive') == [f'exp1-{TODAY}']


def test_archive_decides_under_the_lock(exp1, inited_repo, hermetic):
    # What archive_one looked at before the lock can be stale once it has it:
    # the dir archived meanwhile (and made again, empty) takes the next name,
    # and a dir gone for good is reported, not an error.
    from git_ckpt.commands.archive import archive_one
    from git_ckpt.scratch import read_manifest
    wt, scratch = exp1
    manifest = read_manifest(scratch)
    dest_root = hermetic.root / 'archive'
    ckpt('archive', cwd=wt)   # another process got there first
    assert sorted(os.listdir(scratch)) == ['.git-ckpt.json']
    result = archive_one(scratch, scratch, manifest, run=None, dest_root=dest_root, fmt='dir',
                         delete_source=True, dry_run=False)
    assert result.dest == dest_root / f'exp1-{TODAY}-2'
    assert not scratch.exists()  # moved into -2, not made again (recreate not asked for): gone for good
    assert archive_one(scratch, scratch, manifest, run=None, dest_root=dest_root, fmt='dir',
                       delete_source=True, dry_run=False) is None
    assert sorted(os.listdir(dest_root)) == [f'exp1-{TODAY}', f'exp1-{TODAY}-2']


@pytest.mark.parametrize('linked', ['scratch dir', 'dir on the way to the run'])
def test_run_archive_never_goes_through_a_symlink(exp1, hermetic, linked):
    """Found by tests/faults/test_containment.py (minimized): with the scratch
    dir replaced by a symlink to an outside copy, `archive --run RUN` checked
    only the last component and renamed the outside RUN into the archive."""
    wt, scratch = exp1
    outside = hermetic.tmp / 'outside'
    if linked == 'scratch dir':
        shutil.copytree(scratch, outside / 'copy', symlinks=True)
        os.rename(scratch, scratch.with_name('aside'))
        os.symlink(outside / 'copy', scratch)
        run = 'run1'
    else:
        fill(outside / 'copy', 'run1', steps=(30,), size=1000)
        os.symlink(outside / 'copy', scratch / 'group')
        run = 'group/run1'
    before = tree_digest(outside)
    proc = run_cli(['git', 'ckpt', 'archive', '--run', run], cwd=wt, check=False)
    assert proc.returncode == 1 and 'symlink' in proc.stderr and 'Traceback' not in proc.stderr
    assert tree_digest(outside) == before
    assert not (hermetic.root / 'archive').exists() or not any((hermetic.root / 'archive').iterdir())


def test_tar_zst_hard_link_member_to_an_outside_file_is_refused(exp1, shm_dest, hermetic):
    """Found by tests/faults/test_containment.py (minimized): a .tar.zst
    replaced after its verification by one with a hard-link member to an
    absolute outside path, listed in the manifest with mode 0777: unpacking
    linked the outside inode into the staging dir and chmod'ed it."""
    import hashlib
    import io
    import tarfile

    import zstandard
    from git_ckpt import tarzst
    from git_ckpt.errors import GitCkptError
    outside = hermetic.tmp / 'outside.txt'
    outside.write_bytes(b'secret\n')
    outside.chmod(0o600)
    record = {'size': 7, 'sha256': hashlib.sha256(b'secret\n').hexdigest(), 'mode': 0o777, 'mtime_ns': 0}
    manifest = {'schema': 1, 'complete': True, 'files': {'planted': record}, 'symlinks': {}, 'dirs': []}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo('planted')
        member.type, member.linkname = tarfile.LNKTYPE, os.fspath(outside)
        tar.addfile(member)
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo(transfer.MANIFEST)
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    shm_dest.mkdir()
    path = shm_dest / 'bad.tar.zst'
    path.write_bytes(zstandard.ZstdCompressor().compress(raw.getvalue()))
    before = os.stat(outside)
    with pytest.raises(GitCkptError, match='hard link'):
        tarzst.unpack(path, hermetic.tmp / 'staging')
    after = os.stat(outside)
    assert (after.st_mode, after.st_mtime_ns, after.st_nlink) == (before.st_mode, before.st_mtime_ns, 1)
    assert not (hermetic.tmp / 'staging').exists()


def test_rerun_after_a_kill_mid_delete_source_finishes_the_delete(exp1, shm_dest):
    """kill -9 while --delete-source deletes leaves a verified archive and part of
    the source (found by tests/faults/test_crash.py: the rerun archived the rest
    again as `-2`, splitting one scratch dir over two archives).  The rerun now
    only deletes what the verified archive vouches for."""
    wt, scratch = exp1
    before = tree_digest(scratch)
    ckpt('archive', '--to', shm_dest, cwd=wt)   # the copy went through ...
    (scratch / 'run1' / 'checkpoint-10' / 'model.safetensors').unlink()   # ... the delete had begun
    out = ckpt('archive', '--to', shm_dest, '--delete-source', cwd=wt).stdout
    assert 'already holds the verified archive' in out and 'deleted what was left of the source' in out
    assert os.listdir(shm_dest) == [f'exp1-{TODAY}']
    assert digest_without_manifest(shm_dest / f'exp1-{TODAY}') == before
    assert sorted(os.listdir(scratch)) == ['.git-ckpt.json']
    # A file changed since: a new archive, nothing deleted on the old one's word.
    fill(scratch, steps=(30,))
    out = ckpt('archive', '--to', shm_dest, '--delete-source', cwd=wt).stdout
    assert f'exp1-{TODAY}-2  (copy' in out
    assert sorted(os.listdir(scratch)) == ['.git-ckpt.json']


def test_delete_source_deletes_the_scratch_manifest_last(tmp_path):
    """Until every other file is gone the scratch dir stays managed, so a rerun
    after a kill mid-delete still finds it."""
    src = tmp_path / 'scratch'
    src.mkdir()
    (src / '.git-ckpt.json').write_text('{}')
    (src / 'a.bin').write_bytes(b'a')
    (src / 'changed.bin').write_bytes(b'c')
    manifest = {'files': {rel: {'size': (src / rel).stat().st_size, 'mtime_ns': (src / rel).stat().st_mtime_ns}
                          for rel in ('.git-ckpt.json', 'a.bin')}}
    assert sorted(transfer.delete_listed(src, manifest)) == ['.git-ckpt.json', 'changed.bin']
    assert sorted(os.listdir(src)) == ['.git-ckpt.json', 'changed.bin']
    (src / 'changed.bin').unlink()
    assert transfer.delete_listed(src, manifest) == [] and not src.exists()


def test_restore_rerun_after_a_kill_between_staging_and_moving_in(exp1, shm_dest):
    """kill -9 after the verified copy into the staging dir, with some entries
    already moved in (found by tests/faults/test_crash.py: the rerun refused,
    'an earlier restore was interrupted' or 'already has run1; use --force').
    The rerun finishes the staged restore; a rerun after that has nothing to do."""
    wt, scratch = exp1
    fill(scratch, 'run2', steps=(5,))
    before = tree_digest(scratch)
    ckpt('archive', '--to', shm_dest, '--delete-source', cwd=wt)
    path = shm_dest / f'exp1-{TODAY}'
    staging = scratch / f'.git-ckpt-restore-{path.name}'
    transfer.transfer(path, staging, allow_rename=False, skip=(transfer.MANIFEST, '.git-ckpt.json'))
    os.rename(staging / 'run1', scratch / 'run1')   # the killed run had moved run1 in
    out = ckpt('restore', path, cwd=wt).stdout
    assert 'an interrupted restore was finished' in out
    assert tree_digest(scratch) == before and not staging.exists()
    out = ckpt('restore', path, cwd=wt).stdout
    assert 'nothing to restore' in out
    assert tree_digest(scratch) == before
    # Something else under a restored name is still refused.
    (scratch / 'run2' / 'checkpoint-5' / 'model.safetensors').write_bytes(b'newer work')
    proc = ckpt('restore', path, cwd=wt, check=False)
    assert proc.returncode == 1 and 'already has run2' in proc.stderr and 'run1' not in proc.stderr


def test_restore_never_deletes_a_staging_dir_it_cannot_vouch_for(exp1, shm_dest):
    wt, scratch = exp1
    ckpt('archive', '--to', shm_dest, '--delete-source', cwd=wt)
    staging = scratch / f'.git-ckpt-restore-exp1-{TODAY}'
    staging.mkdir()
    (staging / 'mine.bin').write_bytes(b'only copy')   # e.g. an archive moved there on one filesystem
    proc = ckpt('restore', shm_dest / f'exp1-{TODAY}', cwd=wt, check=False)
    assert proc.returncode == 1 and 'an earlier restore of' in proc.stderr
    assert (staging / 'mine.bin').read_bytes() == b'only copy'


@pytest.mark.parametrize('manifest_rewritten', [False, True])
def test_same_filesystem_restore_killed_after_moving_the_archive(exp1, hermetic, manifest_rewritten):
    """On one filesystem restore renames the archive into its staging dir; a
    kill right after left the archive gone from the archive dir, and the
    rerun said 'no archive'.  It now finishes from the staging dir."""
    wt, scratch = exp1
    before = tree_digest(scratch)
    ckpt('archive', '--delete-source', cwd=wt)   # same filesystem: a rename into <root>/archive
    path = hermetic.root / 'archive' / f'exp1-{TODAY}'
    staging = scratch / f'.git-ckpt-restore-{path.name}'
    if manifest_rewritten:
        transfer.transfer(path, staging, skip=(transfer.MANIFEST, '.git-ckpt.json'))
    else:
        os.rename(path, staging)   # killed between the rename and the new manifest
    assert not path.exists()
    out = ckpt('restore', f'exp1-{TODAY}', cwd=wt).stdout
    assert 'from the staging dir of an interrupted restore' in out
    after = tree_digest(scratch)
    assert after.pop('.git-ckpt.json') and before.pop('.git-ckpt.json')   # re-made for the live worktree
    assert after == before and not staging.exists()


def test_an_archive_killed_before_its_partial_held_data_is_resumed_under_its_name(exp1, shm_dest):
    wt, scratch = exp1
    shm_dest.mkdir()
    (shm_dest / f'exp1-{TODAY}.partial').mkdir()   # killed right after the mkdir
    ckpt('archive', '--to', shm_dest, cwd=wt)
    assert os.listdir(shm_dest) == [f'exp1-{TODAY}']


def test_an_archive_killed_between_its_last_write_and_the_rename_is_finished_under_its_name(exp1, shm_dest):
    """The copy is complete and its journal already gone (deleted just before
    the rename): the manifest says whose copy it is, so the rerun finishes
    that archive instead of starting a second one (seen by the kill -9 suite)."""
    wt, scratch = exp1
    before = tree_digest(scratch)
    ckpt('archive', '--to', shm_dest, cwd=wt)
    final = shm_dest / f'exp1-{TODAY}'
    assert not (final / transfer.JOURNAL).exists()
    final.rename(final.with_name(final.name + '.partial'))   # killed just before the rename
    ckpt('archive', '--to', shm_dest, cwd=wt)
    assert os.listdir(shm_dest) == [f'exp1-{TODAY}']
    assert digest_without_manifest(final) == before and transfer.verify(final) == []


def test_same_filesystem_restore_killed_while_removing_its_staging_dir(exp1, hermetic):
    wt, scratch = exp1
    staging = scratch / f'.git-ckpt-restore-exp1-{TODAY}'
    staging.mkdir()   # everything was in place; only the empty staging dir was left
    out = ckpt('restore', f'exp1-{TODAY}', cwd=wt).stdout
    assert 'had already put everything in place' in out and not staging.exists()
