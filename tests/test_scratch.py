"""The scratch root on disk (git_ckpt/scratch.py): root checks, private
directory creation, manifests, and which dirs count as managed.  Real
directories, a real second user, and a real tmpfs for a full filesystem."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import scratch_path
from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.scratch import (
    check_root, ensure_private_dir, ensure_standalone_dir, iter_managed_dirs, iter_project_dirs,
    read_json, read_manifest, write_json_atomic,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def give_away(path: Path, user) -> Path:
    os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    return path


# -- check_root --------------------------------------------------------------------------

def test_check_root_returns_the_real_path(tmp_path):
    (tmp_path / 'real').mkdir(mode=0o700)
    (tmp_path / 'link').symlink_to(tmp_path / 'real')
    assert check_root(tmp_path / 'link') == tmp_path / 'real'


@pytest.mark.parametrize('setup,needle', [
    (lambda p: None, 'does not exist'),
    (lambda p: p.write_text(''), 'not a directory'),
    (lambda p: (p.mkdir(), p.chmod(0o777)), 'world-writable'),
])
def test_check_root_refusals(tmp_path, setup, needle):
    root = tmp_path / 'root'
    setup(root)
    with pytest.raises(GitCkptError, match=needle) as info:
        check_root(root)
    assert info.value.fix  # every refusal says what to do


def test_check_root_accepts_a_root_owned_sticky_dir(tmp_path):
    root = tmp_path / 'shared'
    root.mkdir()
    root.chmod(0o1777)
    assert check_root(root) == root


def test_check_root_refuses_another_users_dir_and_a_link_to_it(tmp_path, unprivileged_user):
    theirs = tmp_path / 'theirs'
    theirs.mkdir()
    give_away(theirs, unprivileged_user)
    (tmp_path / 'link').symlink_to(theirs)
    for root in (theirs, tmp_path / 'link'):
        with pytest.raises(GitCkptError, match='owned by ckpt-test-user'):
            check_root(root)


def test_check_root_creates_only_the_fallback(tmp_path):
    with pytest.raises(GitCkptError, match='does not exist'):
        check_root(tmp_path / 'cache' / 'git-ckpt')
    assert check_root(tmp_path / 'cache' / 'git-ckpt', create_fallback=True).is_dir()
    assert mode(tmp_path / 'cache' / 'git-ckpt') == 0o700


# -- ensure_private_dir ---------------------------------------------------------------------

def test_ensure_private_dir_creates_each_part_0700(tmp_path):
    old = os.umask(0)
    try:
        made = ensure_private_dir(tmp_path, Path('a') / 'b' / 'c')
    finally:
        os.umask(old)
    assert made == tmp_path / 'a' / 'b' / 'c'
    for path in (made, made.parent, made.parent.parent):
        assert mode(path) == 0o700


def test_ensure_private_dir_is_idempotent_and_keeps_contents(tmp_path):
    made = ensure_private_dir(tmp_path, 'a/b')
    (made / 'checkpoint-1').mkdir()
    assert ensure_private_dir(tmp_path, 'a/b') == made
    assert (made / 'checkpoint-1').is_dir()


def test_ensure_private_dir_without_create_only_checks(tmp_path):
    assert ensure_private_dir(tmp_path, 'x/y', create=False) == tmp_path / 'x' / 'y'
    assert not (tmp_path / 'x').exists()


@pytest.mark.parametrize('depth', [0, 1])
def test_symlink_anywhere_on_the_path_is_refused(tmp_path, depth):
    target = tmp_path / 'target'
    target.mkdir()
    root = tmp_path / 'root'
    root.mkdir()
    parts = ['proj', 'wt']
    if depth:
        (root / 'proj').mkdir()
    (root / Path(*parts[:depth + 1])).symlink_to(target)
    for create in (True, False):
        with pytest.raises(GitCkptError, match='symlink'):
            ensure_private_dir(root, Path(*parts), create=create)
    assert list(target.iterdir()) == []


def test_a_file_on_the_path_is_refused(tmp_path):
    (tmp_path / 'proj').write_text('')
    with pytest.raises(GitCkptError, match='not a directory'):
        ensure_private_dir(tmp_path, 'proj/wt')


def test_another_users_dir_on_the_path_is_refused(tmp_path, unprivileged_user):
    (tmp_path / 'proj').mkdir(mode=0o777)
    give_away(tmp_path / 'proj', unprivileged_user)
    with pytest.raises(GitCkptError, match='owned by ckpt-test-user') as info:
        ensure_private_dir(tmp_path, 'proj/wt')
    assert 'pre-created' in info.value.fix
    assert not (tmp_path / 'proj' / 'wt').exists()


def test_full_filesystem_is_one_clear_error(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    mnt = tmp_path / 'full'
    mnt.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m,nr_inodes=3', 'tmpfs', mnt],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f'cannot mount tmpfs: {proc.stderr.strip()}')
    try:
        with pytest.raises(GitCkptError, match='no space left') as info:
            ensure_private_dir(mnt, 'a/b/c/d')
        assert 'free space' in info.value.fix
    finally:
        subprocess.run(['umount', mnt], check=True)


def test_concurrent_creators_all_succeed(tmp_path):
    # Ranks of one job: every process must get the same dir, none an error.
    script = ('import sys; from pathlib import Path; from git_ckpt.scratch import ensure_private_dir; '
              'print(ensure_private_dir(Path(sys.argv[1]), "p/q/r/s"))')
    procs = [subprocess.Popen([sys.executable, '-c', script, tmp_path], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert results == {os.fspath(tmp_path / 'p' / 'q' / 'r' / 's')}


# -- ensure_standalone_dir (GIT_CKPT_DIR) ----------------------------------------------------

def test_standalone_dir_creates_missing_parts_private(tmp_path):
    made = ensure_standalone_dir(tmp_path / 'jobs' / 'run1')
    assert made == tmp_path / 'jobs' / 'run1'
    assert mode(made) == mode(made.parent) == 0o700


def test_standalone_dir_accepts_our_existing_dir_whatever_its_mode(tmp_path):
    (tmp_path / 'mine').mkdir(mode=0o755)
    assert ensure_standalone_dir(tmp_path / 'mine') == tmp_path / 'mine'
    assert mode(tmp_path / 'mine') == 0o755  # the user's own dir is left as they made it


def test_standalone_dir_below_a_symlinked_parent_is_fine(tmp_path):
    (tmp_path / 'real').mkdir()
    (tmp_path / 'link').symlink_to(tmp_path / 'real')
    assert ensure_standalone_dir(tmp_path / 'link' / 'job').is_dir()
    assert (tmp_path / 'real' / 'job').is_dir()


# -- JSON and manifests ------------------------------------------------------------------------

def test_write_json_atomic_roundtrip_private_and_no_leftovers(tmp_path):
    write_json_atomic(tmp_path / 'm.json', {'b': 1, 'a': 'é'})
    assert read_json(tmp_path / 'm.json') == {'a': 'é', 'b': 1}
    assert mode(tmp_path / 'm.json') == 0o600
    write_json_atomic(tmp_path / 'm.json', {'c': 2})
    assert read_json(tmp_path / 'm.json') == {'c': 2}
    assert os.listdir(tmp_path) == ['m.json']


@pytest.mark.parametrize('content', ['', '{broken', '[1, 2]', '"text"'])
def test_read_json_of_garbage_is_none(tmp_path, content):
    (tmp_path / 'm.json').write_text(content)
    assert read_json(tmp_path / 'm.json') is None


def test_read_json_does_not_follow_symlinks(tmp_path):
    (tmp_path / 'elsewhere.json').write_text('{"a": 1}')
    (tmp_path / 'm.json').symlink_to(tmp_path / 'elsewhere.json')
    assert read_json(tmp_path / 'm.json') is None


def manifest(**extra) -> dict:
    return {'schema': C.MANIFEST_SCHEMA, 'worktree_id': 'exp1-00000000', **extra}


def test_read_manifest_requires_schema_and_identity(tmp_path):
    write_json_atomic(tmp_path / C.MANIFEST_NAME, manifest())
    assert read_manifest(tmp_path)['worktree_id'] == 'exp1-00000000'
    write_json_atomic(tmp_path / C.MANIFEST_NAME, {'schema': C.MANIFEST_SCHEMA})
    assert read_manifest(tmp_path) is None
    write_json_atomic(tmp_path / C.MANIFEST_NAME, manifest(schema=99))
    assert read_manifest(tmp_path) is None


def test_only_manifested_real_dirs_are_iterated(tmp_path):
    root = tmp_path / 'root'
    project = root / 'proj-1234'
    for name in ('b-2', 'a-1', 'no-manifest', 'corrupt'):
        (project / name).mkdir(parents=True)
    write_json_atomic(project / C.REPO_MANIFEST_NAME, {'schema': 1})
    write_json_atomic(project / 'a-1' / C.MANIFEST_NAME, manifest(worktree_id='a-1'))
    write_json_atomic(project / 'b-2' / C.MANIFEST_NAME, manifest(worktree_id='b-2'))
    (project / 'corrupt' / C.MANIFEST_NAME).write_text('{')
    (project / 'link-3').symlink_to(project / 'a-1')           # a symlink is never managed
    (root / 'not-a-project').mkdir()                            # no repo manifest
    (root / '.git-ckpt').mkdir()                                # root-level state
    write_json_atomic(root / '.git-ckpt' / C.REPO_MANIFEST_NAME, {'schema': 1})
    (root / 'linked-project').symlink_to(project)
    assert list(iter_project_dirs(root)) == [project]
    assert [(p.name, m['worktree_id']) for p, m in iter_managed_dirs(project)] == [
        ('a-1', 'a-1'), ('b-2', 'b-2')]
    assert list(iter_project_dirs(tmp_path / 'missing')) == []
    assert list(iter_managed_dirs(tmp_path / 'missing')) == []


def test_manifest_written_by_create_is_readable_json(inited_repo):
    d = scratch_path(inited_repo)
    data = json.loads((d / C.MANIFEST_NAME).read_text())
    assert read_manifest(d) == data


def test_a_full_filesystem_is_a_clear_error_and_leaves_no_temp_file(tmpfs_mount):
    from git_ckpt.scratch import write_json_atomic
    where = tmpfs_mount('full', size='1m')
    (where / 'old.json').write_text('{"old": true}')
    with open(where / 'filler', 'wb') as f:
        try:
            f.write(b'\0' * (2 << 20))
        except OSError:
            pass
    with pytest.raises(GitCkptError) as info:
        write_json_atomic(where / 'old.json', {'new': 'x' * 10000})
    assert str(info.value).startswith(f'no space left on the filesystem of {where} (')
    assert 'git ckpt prune --keep N' in str(info.value) and '\n' not in str(info.value)
    assert sorted(os.listdir(where)) == ['filler', 'old.json']
    assert json.loads((where / 'old.json').read_text()) == {'old': True}


def test_an_unexpected_full_disk_error_is_one_line(capsys):
    import errno as _errno
    from git_ckpt.errors import report
    assert report(OSError(_errno.ENOSPC, 'No space left on device', '/scratch/x/file')) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        'git-ckpt: error: no space left on the filesystem of /scratch/x (No space left on device); free space '
        'there (git ckpt status shows what uses it; git ckpt prune --keep N) or choose another root']
