"""git_ckpt.transfer on real filesystems: /tmp (ext4/overlay) and /dev/shm (tmpfs)
are different filesystems, so a tree moved between them is really copied."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from git_ckpt import transfer
from git_ckpt.safe_delete import remove_tree
from git_ckpt.errors import GitCkptError

SHM = Path('/dev/shm')


def tree_digest(root: Path) -> dict[str, str]:
    """rel path -> sha256 / 'link:target' / 'dir', never following links."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = os.fspath(path.relative_to(root))
            if path.is_symlink():
                out[rel] = 'link:' + os.readlink(path)
            elif path.is_dir():
                out[rel] = 'dir'
            else:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def shm_dir(tmp_path):
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip('/dev/shm is missing or on the same filesystem as the test dir')
    d = SHM / f'git-ckpt-test-{os.getpid()}-{tmp_path.name}'
    d.mkdir()
    yield d
    remove_tree(d)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs: a real filesystem that fills up."""
    mnt = tmp_path / 'small'
    mnt.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs (needs root): {proc.stderr.decode().strip()}')
    yield mnt
    subprocess.run(['umount', '-l', mnt], check=False)


def make_tree(root: Path, outside: Path) -> Path:
    """A checkpoint-like tree with the awkward cases: nesting, an empty dir,
    a symlink pointing outside, a hard link pair, odd modes."""
    root.mkdir(parents=True, exist_ok=True)
    ck = root / 'run1' / 'checkpoint-10'
    ck.mkdir(parents=True)
    (ck / 'model.safetensors').write_bytes(os.urandom(3 << 20))
    (ck / 'trainer_state.json').write_text('{"global_step": 10}\n')
    (ck / 'readonly.txt').write_text('ro\n')
    os.chmod(ck / 'readonly.txt', 0o444)
    (root / 'run1' / 'empty').mkdir()
    outside.write_text('precious, outside the tree\n')
    (root / 'run1' / 'latest').symlink_to('checkpoint-10')
    (root / 'run1' / 'escape').symlink_to(outside)
    os.link(ck / 'model.safetensors', root / 'run1' / 'model-hardlink.safetensors')
    return root


def test_same_filesystem_is_a_rename(tmp_path):
    src = make_tree(tmp_path / 'src', tmp_path / 'outside.txt')
    inode = os.stat(src / 'run1' / 'checkpoint-10' / 'model.safetensors').st_ino
    before = tree_digest(src)
    result = transfer.transfer(src, tmp_path / 'dest')
    assert result.method == 'rename'
    assert not src.exists()
    dest = tmp_path / 'dest'
    assert os.stat(dest / 'run1' / 'checkpoint-10' / 'model.safetensors').st_ino == inode  # nothing copied
    after = tree_digest(dest)
    after.pop(transfer.MANIFEST)
    assert after == before
    assert transfer.verify(dest) == []
    assert transfer.read_manifest(dest)['method'] == 'rename'


def test_cross_filesystem_copy_verifies_and_keeps_source(shm_dir, tmp_path):
    outside = tmp_path / 'outside.txt'
    src = make_tree(shm_dir / 'src', outside)
    before = tree_digest(src)
    dest = tmp_path / 'dest'
    result = transfer.transfer(src, dest)
    assert result.method == 'copy'
    assert result.files == 4 and result.resumed == 0
    assert result.bytes == (3 << 20) + 20 + 3  # the hard link counted once
    assert tree_digest(src) == before                      # source untouched
    copied = tree_digest(dest)
    copied.pop(transfer.MANIFEST)
    assert copied == before
    assert transfer.verify(dest) == []
    assert not (tmp_path / 'dest.partial').exists()
    run1 = dest / 'run1'
    assert (run1 / 'escape').is_symlink() and os.readlink(run1 / 'escape') == os.fspath(outside)
    assert os.stat(run1 / 'model-hardlink.safetensors').st_ino == \
        os.stat(run1 / 'checkpoint-10' / 'model.safetensors').st_ino   # hard link kept, not duplicated
    assert os.stat(run1 / 'checkpoint-10' / 'readonly.txt').st_mode & 0o777 == 0o444
    assert (run1 / 'empty').is_dir()
    manifest = json.loads((dest / transfer.MANIFEST).read_text())
    assert manifest['complete'] is True
    assert manifest['files']['run1/checkpoint-10/trainer_state.json']['sha256'] == \
        hashlib.sha256(b'{"global_step": 10}\n').hexdigest()


def test_delete_source_after_verification_never_follows_links(shm_dir, tmp_path):
    outside = tmp_path / 'outside.txt'
    src = make_tree(shm_dir / 'src', outside)
    target_dir = tmp_path / 'linked-dir'
    target_dir.mkdir()
    (target_dir / 'keep.bin').write_bytes(b'x' * 100)
    (src / 'dirlink').symlink_to(target_dir)
    result = transfer.transfer(src, tmp_path / 'dest', delete_source=True)
    assert result.method == 'copy' and result.source_left == []
    assert not src.exists()
    assert outside.read_text() == 'precious, outside the tree\n'
    assert (target_dir / 'keep.bin').read_bytes() == b'x' * 100
    assert transfer.verify(tmp_path / 'dest') == []


def test_delete_source_keeps_files_changed_since_the_copy(shm_dir, tmp_path):
    src = make_tree(shm_dir / 'src', tmp_path / 'outside.txt')
    dest = tmp_path / 'dest'
    transfer.transfer(src, dest)
    (src / 'run1' / 'checkpoint-10' / 'trainer_state.json').write_text('{"global_step": 99}\n')
    (src / 'run1' / 'new-file').write_text('written after the copy\n')
    left = transfer.delete_verified(src, dest)
    assert sorted(left) == ['run1/checkpoint-10/trainer_state.json', 'run1/new-file']
    assert (src / 'run1' / 'new-file').exists()
    assert not (src / 'run1' / 'checkpoint-10' / 'model.safetensors').exists()


def test_verify_names_every_bad_file(shm_dir, tmp_path):
    src = make_tree(shm_dir / 'src', tmp_path / 'outside.txt')
    dest = tmp_path / 'dest'
    transfer.transfer(src, dest)
    model = dest / 'run1' / 'checkpoint-10' / 'model.safetensors'
    os.unlink(dest / 'run1' / 'model-hardlink.safetensors')   # break the link so only one name changes
    data = bytearray(model.read_bytes())
    data[12345] ^= 0xFF
    model.write_bytes(bytes(data))
    (dest / 'run1' / 'checkpoint-10' / 'trainer_state.json').unlink()
    (dest / 'run1' / 'stray.bin').write_bytes(b'?')
    problems = {p.path: p.reason for p in transfer.verify(dest)}
    assert problems == {
        'run1/checkpoint-10/model.safetensors': 'checksum mismatch',
        'run1/checkpoint-10/trainer_state.json': 'missing',
        'run1/model-hardlink.safetensors': 'missing',
        'run1/stray.bin': 'not in the manifest',
    }


def test_a_tree_without_a_complete_manifest_is_never_good(tmp_path):
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'a').write_text('a')
    assert [p.path for p in transfer.verify(tree)] == [transfer.MANIFEST]
    (tree / transfer.MANIFEST).write_text(json.dumps({'complete': False, 'files': {}}))
    assert [p.path for p in transfer.verify(tree)] == [transfer.MANIFEST]


def test_refuses_existing_destination_and_reserved_names(shm_dir, tmp_path):
    src = make_tree(shm_dir / 'src', tmp_path / 'outside.txt')
    (tmp_path / 'dest').mkdir()
    with pytest.raises(GitCkptError, match='already exists'):
        transfer.transfer(src, tmp_path / 'dest')
    (src / transfer.MANIFEST).write_text('{}')
    with pytest.raises(GitCkptError, match='looks like an archive'):
        transfer.transfer(src, tmp_path / 'dest2')
    assert not (tmp_path / 'dest2.partial').exists()


KILL_SCRIPT = '''
import sys
from git_ckpt import transfer
from git_ckpt.safe_delete import remove_tree
transfer.transfer(sys.argv[1], sys.argv[2], progress=False)
'''


def test_kill_9_mid_copy_then_rerun_resumes(shm_dir, tmp_path):
    src = shm_dir / 'src'
    src.mkdir()
    for i in range(24):
        (src / f'shard-{i:02d}.bin').write_bytes(os.urandom(8 << 20))
    before = tree_digest(src)
    dest = tmp_path / 'dest'
    journal = tmp_path / 'dest.partial' / transfer.JOURNAL
    proc = subprocess.Popen([sys.executable, '-c', KILL_SCRIPT, src, dest])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 3:  # header + 2 files
            break
        time.sleep(0.002)
    if proc.poll() is not None:
        pytest.fail('the copy finished before it could be killed')
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not dest.exists()
    assert transfer.verify(tmp_path / 'dest.partial')      # an unfinished copy is never good
    result = transfer.transfer(src, dest, progress=False)
    assert result.resumed >= 2
    assert transfer.verify(dest) == []
    assert tree_digest(src) == before
    copied = tree_digest(dest)
    copied.pop(transfer.MANIFEST)
    assert copied == before


def test_enospc_is_a_clear_error_with_source_intact(shm_dir, small_tmpfs):
    big = shm_dir / 'big'
    big.mkdir()
    (big / 'model.bin').write_bytes(os.urandom(3 << 20))
    with pytest.raises(GitCkptError, match='not enough space'):
        transfer.transfer(big, small_tmpfs / 'dest')
    assert (big / 'model.bin').stat().st_size == 3 << 20
    # Many small files fit by byte count but not by blocks: ENOSPC mid-copy.
    many = shm_dir / 'many'
    many.mkdir()
    for i in range(600):
        (many / f'f{i:03d}').write_bytes(os.urandom(100))
    before = tree_digest(many)
    with pytest.raises(GitCkptError, match='no space left'):
        transfer.transfer(many, small_tmpfs / 'dest')
    assert tree_digest(many) == before
    assert not (small_tmpfs / 'dest').exists()
    assert not (small_tmpfs / 'dest.partial').exists()


@pytest.mark.parametrize('pipeline', [True, False], ids=['two-threads', 'one-thread'])
def test_both_copy_paths_give_the_same_verified_copy(shm_dir, tmp_path, monkeypatch, pipeline):
    """The pipelined copy (reader/hasher thread + writer/verifier) is chosen by
    load; force each path so both are proven on every run."""
    from git_ckpt import checksums
    monkeypatch.setattr(checksums, 'PIPELINE', pipeline)
    src = shm_dir / 'src'
    (src / 'run1' / 'checkpoint-1').mkdir(parents=True)
    payload = os.urandom(9 << 20) + b'tail'   # several blocks and a partial one
    (src / 'run1' / 'checkpoint-1' / 'model.safetensors').write_bytes(payload)
    dest = tmp_path / 'dest'
    result = transfer.transfer(src, dest)
    assert result.method == 'copy'
    copied = (dest / 'run1' / 'checkpoint-1' / 'model.safetensors').read_bytes()
    assert copied == payload
    manifest = json.loads((dest / transfer.MANIFEST).read_text())
    assert manifest['files']['run1/checkpoint-1/model.safetensors']['sha256'] == \
        hashlib.sha256(payload).hexdigest()
    assert transfer.verify(dest) == []


# --- issue 8, scenario 5: a .partial planted by another user ----------------------

def test_a_partial_of_another_user_is_never_resumed_into(shm_dir, tmp_path, unprivileged_user):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'model.bin').write_bytes(b'w' * 1000)
    dest = shm_dir / 'archive'
    partial = shm_dir / 'archive.partial'
    partial.mkdir(mode=0o777)
    # A journal naming our source, as a real interrupted copy of ours would have.
    (partial / transfer.JOURNAL).write_text(json.dumps({'source': os.path.realpath(src), 'started': 'x'}) + '\n')
    (partial / 'planted.txt').write_text('theirs\n')
    for path in (partial, partial / transfer.JOURNAL, partial / 'planted.txt'):
        os.chown(path, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    before = tree_digest(partial)
    with pytest.raises(GitCkptError, match=f'owned by {unprivileged_user.pw_name}'):
        transfer.transfer(src, dest)
    assert tree_digest(partial) == before and not dest.exists()


def test_a_source_swapped_for_a_symlink_after_the_scan_gets_no_manifest_through_it(tmp_path, monkeypatch):
    """Found by tests/faults/test_containment.py (minimized): the tree swapped
    for a symlink to an outside dir between the scan and the rename; the
    rename moved the link and the manifest was written where it pointed."""
    src, outside = tmp_path / 'src', tmp_path / 'outside'
    (src / 'run').mkdir(parents=True)
    (src / 'run' / 'a.bin').write_bytes(b'x' * 100)
    outside.mkdir()
    (outside / 'mine.txt').write_text('not yours\n')
    real_scan = transfer.scan

    def scan_then_swap(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        os.rename(src, tmp_path / 'aside')
        os.symlink(outside, src)
        return result
    monkeypatch.setattr(transfer, 'scan', scan_then_swap)
    with pytest.raises(GitCkptError):
        transfer.transfer(src, tmp_path / 'dest')
    assert sorted(p.name for p in outside.iterdir()) == ['mine.txt']
    assert tree_digest(tmp_path / 'aside') == {'run': 'dir', 'run/a.bin': hashlib.sha256(b'x' * 100).hexdigest()}


@pytest.mark.parametrize('how', ['delete_listed', 'remove_tree'])
def test_deleting_within_a_dir_follows_no_symlink_on_the_way(shm_dir, tmp_path, how):
    """Found by tests/faults/test_containment.py (minimized): archive --run
    a/b/RUN --delete-source, and restore --force into such a run, with `a`
    swapped for a symlink to an exact outside copy before the delete; only
    the last two components were opened with O_NOFOLLOW, so the copy's files
    (same sizes and mtimes) were deleted."""
    import shutil
    scratch, outside = tmp_path / 'scratch', tmp_path / 'outside'
    run = scratch / 'group' / 'sub' / 'run'
    run.mkdir(parents=True)
    (run / 'model.bin').write_bytes(os.urandom(1000))
    copy = transfer.transfer(run, shm_dir / 'copy', allow_rename=False)
    shutil.copytree(scratch / 'group', outside / 'group', symlinks=True)  # copy2: same mtimes
    os.rename(scratch / 'group', scratch / 'aside')
    os.symlink(outside / 'group', scratch / 'group')
    before = tree_digest(outside)
    with pytest.raises(GitCkptError, match='symlink'):
        if how == 'delete_listed':
            transfer.delete_verified(run, copy.dest, within=scratch)
        else:
            remove_tree(run, within=scratch)
    assert tree_digest(outside) == before


@pytest.mark.parametrize('name', ['ABS', '../../outside/secret.txt', 'run/../../x', './a', ''])
def test_a_manifest_naming_paths_outside_its_tree_never_verifies(tmp_path, name):
    """Found by tests/faults/test_containment.py (minimized): an outside file
    listed by its absolute name with its true checksum verified, and
    `restore --force` then took its first component ('') for the scratch dir
    itself and deleted it whole."""
    import shutil
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'secret.txt').write_bytes(b'do not touch\n')
    tree = tmp_path / 'tree'
    (tree / 'run').mkdir(parents=True)
    (tree / 'run' / 'a.bin').write_bytes(b'a')
    shutil.copy(outside / 'secret.txt', tree / 'x')
    made = transfer.transfer(tree, tmp_path / 'archive', allow_rename=False).dest
    manifest = json.loads((made / transfer.MANIFEST).read_text())
    rel = os.fspath(outside / 'secret.txt') if name == 'ABS' else name
    manifest['files'][rel] = dict(manifest['files']['x'])
    (made / transfer.MANIFEST).write_text(json.dumps(manifest))
    problems = transfer.verify(made)
    assert [p.path for p in problems] == [rel] and 'outside the archive' in problems[0].reason


@pytest.mark.parametrize('journal', [None, b'', b'{"source": "/tm'])
def test_a_partial_killed_before_it_held_data_is_restarted(shm_dir, tmp_path, journal):
    """kill -9 between making `<dest>.partial` and finishing its journal's first
    line (found by tests/faults/test_crash.py: the rerun refused it as 'not a
    transfer git-ckpt started', and archive went on to `-2`)."""
    src = make_tree(shm_dir / 'src', tmp_path / 'outside.txt')
    dest = tmp_path / 'dest'
    partial = tmp_path / 'dest.partial'
    partial.mkdir()
    if journal is not None:
        (partial / transfer.JOURNAL).write_bytes(journal)
    assert transfer.empty_partial(partial)
    transfer.transfer(src, dest, progress=False)
    assert transfer.verify(dest) == [] and not partial.exists()
    (tmp_path / 'other.partial').mkdir()
    (tmp_path / 'other.partial' / 'data.bin').write_bytes(b'x')
    assert not transfer.empty_partial(tmp_path / 'other.partial')   # holds data: never restarted on a guess
