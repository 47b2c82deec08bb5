"""`git ckpt migrate`: real moves across filesystems (/dev/shm is a tmpfs), a
kill -9 mid-copy then a rerun, a full filesystem, the HF cache, bad input."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ckpt, git, run, scratch_path


def checksums(tree: Path) -> dict[str, str]:
    """rel path -> sha256 of every file (symlinks as their target), never following links."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath) / name
            rel = os.fspath(path.relative_to(tree))
            out[rel] = ('link:' + os.readlink(path)) if path.is_symlink() else \
                hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def make_data(where: Path, files: int = 5, size: int = 200_000) -> dict[str, str]:
    (where / 'checkpoint-10').mkdir(parents=True)
    for i in range(files):
        (where / 'checkpoint-10' / f'shard-{i}.bin').write_bytes(os.urandom(size))
    (where / 'log.txt').write_text('step 10\n')
    os.symlink('checkpoint-10', where / 'latest')
    return checksums(where)


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('git-ckpt: error: '), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def shm_root(shm_dir, monkeypatch):
    """The scratch root on /dev/shm: a different filesystem from the worktree."""
    root = shm_dir / 'root'
    root.mkdir(mode=0o700)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    return root


def test_migrate_across_filesystems_copies_verifies_and_links(inited_repo, shm_root):
    original = make_data(inited_repo / 'outputs')
    assert os.stat(inited_repo).st_dev != os.stat(shm_root).st_dev
    proc = ckpt('migrate', 'outputs', cwd=inited_repo)
    scratch = scratch_path(inited_repo)
    dest = scratch / 'outputs'
    assert 'copied and verified' in proc.stdout
    assert re.search(r'home got back \d+\.\dK', proc.stdout)  # home and the worktree share tmp_path's fs
    link = inited_repo / 'outputs'
    assert link.is_symlink() and Path(os.readlink(link)) == dest
    assert checksums(dest) == original  # and nothing extra, no transfer manifest left behind
    assert oct(os.stat(dest).st_mode & 0o777) == oct(0o700)
    assert git('config', '--get-all', 'ckpt.link', cwd=inited_repo).stdout.split() == ['outputs']
    assert '/outputs' in (inited_repo / '.gitignore').read_text().splitlines()
    # recorded: a new worktree gets the link through the hook
    wt = inited_repo.parent / 'exp'
    git('worktree', 'add', '-q', wt, cwd=inited_repo)
    assert (wt / 'outputs').is_symlink()
    # rerun: nothing to do
    assert 'already linked' in ckpt('migrate', 'outputs', cwd=inited_repo).stdout


def test_migrate_on_the_same_filesystem_is_a_rename(inited_repo, hermetic):
    make_data(inited_repo / '.art')
    inode = os.stat(inited_repo / '.art' / 'log.txt').st_ino
    proc = ckpt('migrate', '.art', cwd=inited_repo)
    assert 'renamed' in proc.stdout and 'frees nothing' in proc.stdout
    assert os.stat(scratch_path(inited_repo) / '.art' / 'log.txt').st_ino == inode


def _journal(dest: Path) -> Path:
    return dest.with_name(dest.name + '.partial') / '.git-ckpt-transfer.journal'


@pytest.mark.slow
def test_kill_9_mid_copy_then_rerun(inited_repo, shm_root):
    src = inited_repo / 'outputs'
    src.mkdir()
    for i in range(120):
        (src / f'shard-{i:03}.bin').write_bytes(os.urandom(1 << 20))
    original = checksums(src)
    dest = scratch_path(inited_repo) / 'outputs'
    # Its own process group: git runs git-ckpt as a child, and the kill must hit both.
    proc = subprocess.Popen(['git', 'ckpt', 'migrate', 'outputs'], cwd=inited_repo, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    journal = _journal(dest)
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= 6:
            break
        time.sleep(0.002)
    assert proc.poll() is None, 'the copy finished before it could be killed'
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for _ in range(500):  # the git-ckpt child is reaped by init; wait until it is gone
        if subprocess.run(['pgrep', '-g', str(proc.pid)], capture_output=True).returncode != 0:
            break
        time.sleep(0.01)
    # Killed mid-copy: the source is complete and unchanged, no link, no dest yet.
    assert checksums(src) == original
    assert not src.is_symlink() and not dest.exists()
    done_before = len(journal.read_text().splitlines()) - 1
    assert 0 < done_before < 120
    # Rerun: resumes, verifies, deletes the source, links.
    out = ckpt('migrate', 'outputs', cwd=inited_repo).stdout
    assert 'resuming an interrupted copy' in out
    assert 'already done by an interrupted run' in out
    assert checksums(dest) == original
    assert src.is_symlink() and Path(os.readlink(src)) == dest
    assert not journal.parent.exists()


def test_rerun_after_a_crash_between_verify_and_delete(inited_repo, shm_root):
    """The state a kill leaves after the copy was verified but before the source
    was deleted (made with transfer itself): the rerun only deletes and links."""
    from git_ckpt import transfer
    original = make_data(inited_repo / 'outputs')
    scratch = Path(ckpt('path', cwd=inited_repo).stdout.strip())
    transfer.transfer(inited_repo / 'outputs', scratch / 'outputs', delete_source=False, progress=False)
    assert checksums(inited_repo / 'outputs') == original
    out = ckpt('migrate', 'outputs', cwd=inited_repo).stdout
    assert 'verified copy is already in' in out
    assert (inited_repo / 'outputs').is_symlink()
    assert checksums(scratch / 'outputs') == original


def test_rerun_after_a_crash_never_deletes_the_source_on_a_changed_copy(inited_repo, shm_root):
    """Between the kill and the rerun the verified copy lost a file (a prune of
    the scratch dir, a user): the rerun checks every byte again before it
    deletes the source, and deletes nothing."""
    from git_ckpt import transfer
    original = make_data(inited_repo / 'outputs')
    scratch = Path(ckpt('path', cwd=inited_repo).stdout.strip())
    transfer.transfer(inited_repo / 'outputs', scratch / 'outputs', delete_source=False, progress=False)
    (scratch / 'outputs' / 'checkpoint-10' / 'shard-0.bin').unlink()
    proc = ckpt('migrate', 'outputs', cwd=inited_repo, check=False)
    assert_one_line_error(proc, 'no longer matches its manifest', 'shard-0.bin (missing)', 'was not deleted')
    assert checksums(inited_repo / 'outputs') == original
    assert not (inited_repo / 'outputs').is_symlink()


def test_rerun_after_a_crash_between_delete_and_link(inited_repo, shm_root):
    scratch = Path(ckpt('path', cwd=inited_repo).stdout.strip())
    original = make_data(scratch / 'outputs')  # data moved, the link never made
    out = ckpt('migrate', 'outputs', cwd=inited_repo).stdout
    assert 'data was already there' in out
    assert (inited_repo / 'outputs').is_symlink()
    assert checksums(scratch / 'outputs') == original


def test_full_filesystem_is_a_clear_error_and_loses_nothing(inited_repo, tmpfs_mount, monkeypatch):
    root = tmpfs_mount('tiny', size='1m')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    original = make_data(inited_repo / 'outputs', files=3, size=1 << 20)
    proc = ckpt('migrate', 'outputs', cwd=inited_repo, check=False)
    assert_one_line_error(proc, 'space', 'the source is intact')
    assert checksums(inited_repo / 'outputs') == original
    assert not (inited_repo / 'outputs').is_symlink()
    # Make room, rerun: it completes.
    run(['mount', '-o', 'remount,size=64m', root])
    ckpt('migrate', 'outputs', cwd=inited_repo)
    assert (inited_repo / 'outputs').is_symlink()
    assert checksums(inited_repo / 'outputs') == original


def test_candidates_without_a_terminal_are_only_listed(inited_repo, shm_root):
    make_data(inited_repo / '.art')
    make_data(inited_repo / 'my_run')           # holds checkpoint-* dirs
    make_data(inited_repo / 'checkpoint-500')
    (inited_repo / 'src').mkdir()
    (inited_repo / 'src' / 'model.py').write_text('x = 1\n')
    (inited_repo / 'outputs').mkdir()
    (inited_repo / 'outputs' / 'tracked.txt').write_text('tracked\n')
    git('add', 'outputs/tracked.txt', cwd=inited_repo)
    proc = ckpt('migrate', cwd=inited_repo, stdin=subprocess.DEVNULL)
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith('  ')]
    assert listed == ['.art', 'checkpoint-500', 'my_run']  # not src, not the tracked outputs
    assert 'nothing moved' in proc.stdout and 'git ckpt migrate .art checkpoint-500 my_run' in proc.stdout
    assert not (inited_repo / '.art').is_symlink()
    dry = ckpt('migrate', '--dry-run', cwd=inited_repo, stdin=subprocess.DEVNULL)
    assert dry.stdout.count('would migrate') == 3 and not (inited_repo / '.art').is_symlink()
    ckpt('migrate', '--yes', cwd=inited_repo, stdin=subprocess.DEVNULL)
    for rel in ('.art', 'checkpoint-500', 'my_run'):
        assert (inited_repo / rel).is_symlink()
    assert not (inited_repo / 'outputs').is_symlink()


def test_candidates_on_a_terminal_are_asked_one_by_one(inited_repo, shm_root):
    make_data(inited_repo / '.art', files=4, size=1 << 20)  # big enough for a progress bar
    make_data(inited_repo / 'wandb')
    env = {**os.environ}
    # `script` gives the command a real pseudo-terminal; answer yes, then no.
    proc = subprocess.run(['script', '-qec', 'git ckpt migrate', '/dev/null'], cwd=inited_repo,
                          input='y\nn\n', capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc
    assert 'move .art' in proc.stdout and 'move wandb' in proc.stdout
    assert 'copying to .art' in proc.stdout  # the progress bar, drawn on the terminal
    assert (inited_repo / '.art').is_symlink()
    assert not (inited_repo / 'wandb').is_symlink() and (inited_repo / 'wandb' / 'log.txt').exists()


def test_configured_link_still_a_real_dir_is_proposed(inited_repo, shm_root):
    git('config', 'ckpt.link', 'results/eval', cwd=inited_repo)
    make_data(inited_repo / 'results' / 'eval')
    proc = ckpt('migrate', cwd=inited_repo, stdin=subprocess.DEVNULL)
    assert 'results/eval' in proc.stdout and 'configured link' in proc.stdout


def test_nothing_to_migrate(inited_repo):
    assert 'nothing to migrate' in ckpt('migrate', cwd=inited_repo).stdout


@pytest.mark.parametrize('make, arg, needles', [
    (lambda r: None, '/etc', ('outside the worktree',)),
    (lambda r: None, '../x', ('outside the worktree',)),
    (lambda r: (r / 'f.bin').write_bytes(b'1'), 'f.bin', ('is a file',)),
    (lambda r: os.symlink('/tmp', r / 'outputs'), 'outputs', ('already a symlink to /tmp',)),
    (lambda r: None, 'nothere', ('does not exist',)),
    (lambda r: ((r / 'outputs').mkdir(), (r / 'outputs' / 'a.txt').write_text('a'),
                git('add', 'outputs/a.txt', cwd=r)), 'outputs', ('tracked by git', 'outputs/a.txt')),
])
def test_bad_paths(inited_repo, shm_root, make, arg, needles):
    make(inited_repo)
    make_data(inited_repo / 'good')
    proc = ckpt('migrate', 'good', arg, cwd=inited_repo, check=False)
    assert_one_line_error(proc, *needles)
    assert not (inited_repo / 'good').is_symlink()  # checked before anything moved


def test_dest_with_other_data_is_refused(inited_repo, shm_root):
    original = make_data(inited_repo / 'outputs')
    scratch = Path(ckpt('path', cwd=inited_repo).stdout.strip())
    (scratch / 'outputs').mkdir()
    (scratch / 'outputs' / 'older.bin').write_bytes(b'older')
    assert_one_line_error(ckpt('migrate', 'outputs', cwd=inited_repo, check=False),
                          'already exists in scratch')
    assert checksums(inited_repo / 'outputs') == original
    assert (scratch / 'outputs' / 'older.bin').read_bytes() == b'older'


def test_hf_cache_moves_links_and_prints_the_export_line(inited_repo, hermetic, shm_root):
    cache = hermetic.home / '.cache' / 'huggingface'
    original = make_data(cache / 'hub')
    dry = ckpt('migrate', '--hf-cache', '--dry-run', cwd=inited_repo)
    assert f'export HF_HOME={shm_root}/huggingface' in dry.stdout.splitlines()
    assert not cache.is_symlink()
    proc = ckpt('migrate', '--hf-cache', cwd=inited_repo)
    dest = shm_root / 'huggingface'
    assert f'export HF_HOME={dest}' in proc.stdout.splitlines()
    assert 'home got back' in proc.stdout
    assert cache.is_symlink() and Path(os.readlink(cache)) == dest
    assert checksums(dest / 'hub') == original
    assert 'already linked' in ckpt('migrate', '--hf-cache', cwd=inited_repo).stdout
    report = ckpt('doctor', '--json', cwd=inited_repo, check=False).stdout
    assert '"id": "hf.cache"' in report and 'other than home' in report


def test_hf_cache_from_hf_home(hermetic, shm_root, monkeypatch):
    custom = hermetic.tmp / 'hfhome'
    original = make_data(custom)
    monkeypatch.setenv('HF_HOME', os.fspath(custom))
    proc = ckpt('migrate', '--hf-cache', cwd=hermetic.tmp)  # works outside a repository
    assert f'export HF_HOME={shm_root}/huggingface' in proc.stdout.splitlines()
    assert custom.is_symlink() and checksums(shm_root / 'huggingface') == original


def test_hf_cache_bad_input(inited_repo, hermetic, shm_root):
    assert_one_line_error(ckpt('migrate', '--hf-cache', cwd=inited_repo, check=False),
                          'no Hugging Face cache')
    assert_one_line_error(ckpt('migrate', '--hf-cache', 'outputs', cwd=inited_repo, check=False),
                          '--hf-cache takes no PATH')
    cache = hermetic.home / '.cache' / 'huggingface'
    cache.parent.mkdir(parents=True)
    os.symlink('/tmp', cache)
    assert_one_line_error(ckpt('migrate', '--hf-cache', cwd=inited_repo, check=False), 'symlink to /tmp')


def test_hf_cache_already_off_home_is_left_alone(hermetic, shm_dir, shm_root, monkeypatch):
    on_scratch = shm_dir / 'my-hf'
    original = make_data(on_scratch)
    monkeypatch.setenv('HF_HOME', os.fspath(on_scratch))
    proc = ckpt('migrate', '--hf-cache', cwd=hermetic.tmp)
    assert 'already off the home filesystem' in proc.stdout
    assert f'export HF_HOME={on_scratch}' in proc.stdout.splitlines()
    assert not on_scratch.is_symlink() and checksums(on_scratch) == original


# --- issue 8, scenario 5: a destination pre-created by someone else ---------------

def test_migrate_refuses_a_destination_dir_of_another_user(hermetic, unprivileged_user):
    from conftest import assert_error, make_repo
    repo = make_repo(hermetic.tmp / 'projects' / 'proj')
    ckpt('init', cwd=repo)
    (repo / 'outputs').mkdir()
    (repo / 'outputs' / 'w.bin').write_bytes(b'w' * 100)
    theirs = scratch_path(repo) / 'outputs'
    theirs.mkdir()  # empty: the kind of target an earlier `link` leaves, and migrate would replace
    os.chown(theirs, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    assert_error(ckpt('migrate', 'outputs', cwd=repo, check=False), os.fspath(theirs),
                 f'owned by {unprivileged_user.pw_name}')
    assert theirs.is_dir() and theirs.stat().st_uid == unprivileged_user.pw_uid
    assert (repo / 'outputs' / 'w.bin').is_file() and not (repo / 'outputs').is_symlink()


def test_source_delete_follows_no_symlink_inside_the_worktree(inited_repo, shm_root, hermetic, monkeypatch):
    """Found by tests/faults/test_containment.py (minimized): `migrate
    group/sub/out` across filesystems with `group` swapped for a symlink to an
    exact outside copy between the verified copy and the source delete; the
    delete went through the link and removed the copy's files."""
    import shutil

    from git_ckpt import checksums as checksums_mod
    from git_ckpt.commands.migrate import migrate_command
    from git_ckpt.errors import GitCkptError
    source = inited_repo / 'group' / 'sub' / 'out'
    make_data(source, files=2, size=1000)
    outside = hermetic.tmp / 'outside'
    shutil.copytree(inited_repo / 'group', outside / 'group')  # same names, sizes, mtimes
    before = checksums(outside)
    real_remove_tree = checksums_mod.remove_tree

    def swap_then_remove(*args, **kwargs):
        os.rename(inited_repo / 'group', inited_repo / 'aside')
        os.symlink(outside / 'group', inited_repo / 'group')
        return real_remove_tree(*args, **kwargs)
    monkeypatch.setattr(checksums_mod, 'remove_tree', swap_then_remove)
    monkeypatch.chdir(inited_repo)
    with pytest.raises(GitCkptError, match='symlink'):
        migrate_command(('group/sub/out',), hf_cache=False, dry_run=False, yes=True)
    assert checksums(outside) == before
