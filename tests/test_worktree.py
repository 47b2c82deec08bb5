"""Worktree identity (issue 2, section 3): which scratch dir belongs to which
worktree.  Every test drives real `git worktree` commands."""
from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from conftest import add_worktree, assert_error, ckpt, git, make_repo, run, scratch_path
from git_ckpt import constants as C
from git_ckpt.worktree import Worktree, current_worktree, scratch_entries


def path_of(cwd: Path) -> Path:
    """`git ckpt path` (creating), checked to be one absolute line."""
    out = ckpt('path', cwd=cwd).stdout
    assert out.endswith('\n') and out.count('\n') == 1, out
    result = Path(out.strip())
    assert result.is_absolute() and result.is_dir()
    return result


def admin_dirs(repo: Path) -> list[str]:
    return sorted(os.listdir(repo / '.git' / 'worktrees'))


# -- requirement 1: distinct ---------------------------------------------------

def test_every_worktree_of_a_repo_gets_its_own_dir(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    exp2 = add_worktree(inited_repo, hermetic.tmp / 'exp2', '--detach')
    dirs = [path_of(inited_repo), path_of(exp1), path_of(exp2)]
    assert len(set(dirs)) == 3
    # Readable names: <project>-<repo id>/<worktree name>-<worktree id>.
    assert len({d.parent for d in dirs}) == 1
    project = dirs[0].parent
    assert project.parent == hermetic.root
    assert project.name.startswith('proj-')
    assert [d.name.rsplit('-', 1)[0] for d in dirs] == ['proj', 'exp1', 'exp2']


def test_worktrees_with_the_same_basename_in_one_repo_differ(inited_repo, hermetic):
    a = add_worktree(inited_repo, hermetic.tmp / 'a' / 'exp', '-b', 'a')
    b = add_worktree(inited_repo, hermetic.tmp / 'b' / 'exp', '-b', 'b')
    assert admin_dirs(inited_repo) == ['exp', 'exp1']
    assert path_of(a) != path_of(b)
    assert path_of(a).name.startswith('exp-') and path_of(b).name.startswith('exp-')


def test_two_repos_sharing_a_basename_differ(hermetic):
    # The seed guide's identifier gives ~/a/proj/exp1 and ~/b/proj/exp1 the same dir.
    dirs = []
    for parent in ('a', 'b'):
        repo = make_repo(hermetic.tmp / parent / 'proj')
        ckpt('init', cwd=repo)
        exp1 = add_worktree(repo, hermetic.tmp / parent / 'exp1')
        dirs.append((path_of(repo), path_of(exp1)))
    (main_a, exp_a), (main_b, exp_b) = dirs
    assert main_a != main_b and exp_a != exp_b
    assert main_a.parent != main_b.parent
    assert main_a.parent.name.startswith('proj-') and main_b.parent.name.startswith('proj-')


# -- requirement 2: stable ------------------------------------------------------

def test_same_dir_across_branch_switches(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    before_main, before_exp = path_of(inited_repo), path_of(exp1)
    git('switch', '-q', '-c', 'other', cwd=inited_repo)
    git('switch', '-q', '-c', 'other2', cwd=exp1)
    git('checkout', '-q', '--detach', 'main', cwd=exp1)
    assert path_of(inited_repo) == before_main
    assert path_of(exp1) == before_exp
    assert len(list(before_exp.parent.iterdir())) == 3  # two dirs + the repo manifest


def test_same_dir_across_worktree_move(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    before = path_of(exp1)
    (before / 'checkpoint-1').mkdir()
    moved = hermetic.tmp / 'elsewhere' / 'renamed exp'
    moved.parent.mkdir()
    created = json.loads((before / C.MANIFEST_NAME).read_text())['created']
    git('worktree', 'move', exp1, moved, cwd=inited_repo)
    assert path_of(moved) == before
    assert (before / 'checkpoint-1').is_dir()
    # The manifest follows the worktree to its new place (and keeps its history).
    manifest = json.loads((before / C.MANIFEST_NAME).read_text())
    assert manifest['worktree'] == os.fspath(moved) and manifest['created'] == created
    assert manifest['branch'] == 'exp1'
    # The inventory follows the move: the entry is alive, at its new path.
    wt = current_worktree(moved)
    entries = {e.scratch_dir: e for e in scratch_entries(before.parent, wt.common_dir)}
    assert not entries[before].is_orphan
    assert entries[before].worktree_path == moved


def test_path_from_a_subdirectory(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    sub = exp1 / 'src' / 'deep'
    sub.mkdir(parents=True)
    assert path_of(sub) == path_of(exp1)


# -- requirement 3: a re-added worktree gets a NEW dir --------------------------

def _assert_orphaned_and_replaced(repo: Path, exp1: Path, old: Path) -> None:
    assert admin_dirs(repo) == ['exp1']  # git reused the admin name
    new = path_of(exp1)
    assert new != old
    assert new.name.startswith('exp1-')
    assert not (new / 'checkpoint-500').exists()  # nothing inherited to resume from
    assert (old / 'checkpoint-500' / 'weights.bin').read_bytes() == b'old run'  # old one kept
    entries = {e.scratch_dir: e for e in scratch_entries(old.parent, repo / '.git')}
    assert entries[old].is_orphan and entries[old].worktree_path is None
    assert entries[old].manifest['worktree'] == os.fspath(exp1)  # still says whose it was
    assert not entries[new].is_orphan and entries[new].worktree_path == exp1


def _old_run(path: Path) -> None:
    (path / 'checkpoint-500').mkdir()
    (path / 'checkpoint-500' / 'weights.bin').write_bytes(b'old run')


def test_remove_then_re_add_gets_a_new_dir(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    old = path_of(exp1)
    _old_run(old)
    git('worktree', 'remove', exp1, cwd=inited_repo)
    add_worktree(inited_repo, exp1, '-b', 'exp1-again')
    _assert_orphaned_and_replaced(inited_repo, exp1, old)


def test_rm_rf_and_prune_then_re_add_gets_a_new_dir(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    old = path_of(exp1)
    _old_run(old)
    run(['rm', '-rf', exp1])
    # Before the prune git still knows the worktree: not an orphan yet.
    entries = {e.scratch_dir: e for e in scratch_entries(old.parent, inited_repo / '.git')}
    assert not entries[old].is_orphan
    git('worktree', 'prune', cwd=inited_repo)
    add_worktree(inited_repo, exp1, '-b', 'exp1-again')
    _assert_orphaned_and_replaced(inited_repo, exp1, old)


def test_rm_rf_then_forced_re_add_gets_a_new_dir(inited_repo, hermetic):
    # `git worktree add -f` over a missing-but-registered worktree deletes the
    # old admin dir and recreates it under the same name.
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    old = path_of(exp1)
    _old_run(old)
    run(['rm', '-rf', exp1])
    add_worktree(inited_repo, exp1, '-f', '-b', 'exp1-again')
    _assert_orphaned_and_replaced(inited_repo, exp1, old)


def test_no_checkout_worktree_gets_its_dir_lazily(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '--no-checkout')  # fires no hook
    planned = scratch_path(exp1)
    assert not planned.exists()
    assert path_of(exp1) == planned


# -- requirement 4: custom project name -----------------------------------------

def test_custom_project_name_replaces_the_repo_name(repo, hermetic):
    ckpt('init', '--name', 'llama-sweep', cwd=repo)
    assert git('config', '--local', C.CONFIG_NAME, cwd=repo).stdout.strip() == 'llama-sweep'
    exp1 = add_worktree(repo, hermetic.tmp / 'exp1')
    for d in (path_of(repo), path_of(exp1)):
        assert d.parent.name.startswith('llama-sweep-')
        assert json.loads((d / C.MANIFEST_NAME).read_text())['project'] == d.parent.name
    assert not any(p.name.startswith('proj-') for p in hermetic.root.iterdir())


def test_renaming_the_repo_dir_keeps_its_scratch_dir(inited_repo, hermetic):
    before = path_of(inited_repo)
    renamed = inited_repo.parent / 'proj-v2'
    inited_repo.rename(renamed)
    assert path_of(renamed) == before


# -- requirement 5: manifest -----------------------------------------------------

def test_manifest_names_repo_worktree_identity_branch_time_version(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '-b', 'lr-sweep')
    d = path_of(exp1)
    manifest = json.loads((d / C.MANIFEST_NAME).read_text())
    assert manifest['schema'] == C.MANIFEST_SCHEMA
    assert manifest['repo'] == os.fspath(inited_repo / '.git')
    assert manifest['worktree'] == os.fspath(exp1)
    assert manifest['worktree_id'] == d.name
    assert manifest['project'] == d.parent.name
    assert manifest['repo_id'] == d.parent.name.rsplit('-', 1)[1]
    assert manifest['branch'] == 'lr-sweep'
    assert manifest['tool_version'] == C.VERSION
    created = datetime.datetime.fromisoformat(manifest['created'])
    age = datetime.datetime.now(datetime.timezone.utc) - created
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=5)
    repo_manifest = json.loads((d.parent / C.REPO_MANIFEST_NAME).read_text())
    assert repo_manifest['repo'] == os.fspath(inited_repo / '.git')
    assert repo_manifest['repo_id'] == manifest['repo_id']


def test_detached_worktree_manifest_has_no_branch(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '--detach')
    assert json.loads((path_of(exp1) / C.MANIFEST_NAME).read_text())['branch'] is None


def test_only_dirs_with_a_manifest_are_managed(inited_repo, hermetic):
    d = path_of(inited_repo)
    stray = d.parent / 'not-ours'
    stray.mkdir()
    corrupt = d.parent / 'corrupt-1234'
    corrupt.mkdir()
    (corrupt / C.MANIFEST_NAME).write_text('{not json')
    found = [e.scratch_dir for e in scratch_entries(d.parent, inited_repo / '.git')]
    assert found == [d]


# -- requirement 6: multi-user safety ----------------------------------------------

def test_created_dirs_are_private(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    d = path_of(exp1)
    for path in (d, d.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    manifest_mode = stat.S_IMODE((d / C.MANIFEST_NAME).stat().st_mode)
    assert manifest_mode & 0o077 == 0


def test_private_even_with_a_permissive_umask(repo, hermetic):
    proc = run(['sh', '-c', 'umask 000 && git ckpt path'], cwd=repo)
    d = Path(proc.stdout.strip())
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(d.parent.stat().st_mode) == 0o700


def test_scratch_dir_precreated_by_another_user_is_refused(inited_repo, hermetic, unprivileged_user):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '--no-checkout')
    planned = scratch_path(exp1)
    planned.mkdir(mode=0o777)
    os.chown(planned, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    assert_error(ckpt('path', cwd=exp1, check=False), os.fspath(planned), 'ckpt-test-user')
    assert not (planned / C.MANIFEST_NAME).exists()


def test_project_dir_precreated_by_another_user_is_refused(repo, hermetic, unprivileged_user):
    planned = scratch_path(repo)
    planned.parent.mkdir()
    os.chown(planned.parent, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    assert_error(ckpt('path', cwd=repo, check=False), 'owned by ckpt-test-user')
    assert not planned.exists()


def test_symlink_where_a_dir_is_expected_is_refused(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '--no-checkout')
    planned = scratch_path(exp1)
    target = hermetic.tmp / 'attacker'
    target.mkdir()
    planned.symlink_to(target)
    assert_error(ckpt('path', cwd=exp1, check=False), 'symlink')
    assert list(target.iterdir()) == []


def test_symlinked_project_dir_is_refused(repo, hermetic):
    planned = scratch_path(repo)
    target = hermetic.tmp / 'attacker'
    target.mkdir()
    planned.parent.symlink_to(target)
    assert_error(ckpt('path', cwd=repo, check=False), 'symlink')
    assert list(target.iterdir()) == []


# -- concurrency: ranks of one job resolving a new worktree at once ------------------

RESOLVE = 'from git_ckpt.worktree import resolve_scratch_dir; print(resolve_scratch_dir())'


def _race(cwd: Path, n: int) -> set[str]:
    procs = [
        subprocess.Popen([sys.executable, '-c', RESOLVE], cwd=cwd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    outs = set()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outs.add(out.strip())
    return outs


def test_concurrent_resolution_of_a_new_worktree_gives_one_dir(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1', '--no-checkout')
    outs = _race(exp1, 8)
    assert len(outs) == 1
    d = Path(outs.pop())
    assert d.is_dir() and (d / C.MANIFEST_NAME).is_file()
    assert sorted(p.name for p in d.parent.iterdir() if p.name.startswith('exp1-')) == [d.name]
    assert (inited_repo / '.git' / 'worktrees' / 'exp1' / C.WORKTREE_ID_FILE).read_text().strip() == d.name
    assert not [p for p in (inited_repo / '.git' / 'worktrees' / 'exp1').iterdir() if p.name.startswith('.')]


def test_concurrent_resolution_in_a_fresh_repo_gives_one_project(repo, hermetic):
    # No `init`, no ids yet: the repo id and the worktree id are both raced for.
    outs = _race(repo, 8)
    assert len(outs) == 1
    projects = [p for p in hermetic.root.iterdir()]
    assert len(projects) == 1 and Path(outs.pop()).parent == projects[0]


def test_worktree_namedtuple_is_main(inited_repo, hermetic):
    exp1 = add_worktree(inited_repo, hermetic.tmp / 'exp1')
    main, linked = current_worktree(inited_repo), current_worktree(exp1 / '.')
    assert isinstance(main, Worktree) and main.is_main and not linked.is_main
    assert linked.common_dir == main.common_dir == inited_repo / '.git'
    assert linked.git_dir == inited_repo / '.git' / 'worktrees' / 'exp1'


# --- issue 8, scenario 5: a path someone else had a hand in ---------------------

def test_locate_refuses_a_project_dir_of_another_user(inited_repo, unprivileged_user):
    scratch = scratch_path(inited_repo)
    os.chown(scratch.parent, unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    for args in (['path'], ['path', '--no-create'], ['prune', '--keep', '1']):
        line = assert_error(ckpt(*args, cwd=inited_repo, check=False), scratch.parent.name,
                            f'owned by {unprivileged_user.pw_name}')
        assert '; ' in line


def test_locate_refuses_a_manifest_that_is_a_symlink(inited_repo, tmp_path):
    scratch = scratch_path(inited_repo)
    manifest = scratch / C.MANIFEST_NAME
    elsewhere = tmp_path / 'their-manifest.json'
    elsewhere.write_text(manifest.read_text())
    manifest.unlink()
    manifest.symlink_to(elsewhere)
    before = elsewhere.read_bytes()
    for args in (['path'], ['init'], ['archive']):
        assert_error(ckpt(*args, cwd=inited_repo, check=False), C.MANIFEST_NAME, 'symlink')
    assert manifest.is_symlink() and elsewhere.read_bytes() == before


def test_status_in_a_submodule_shows_its_checkout(hermetic):
    import json as _json
    sub_src = make_repo(hermetic.tmp / 'sub-src')
    sup = make_repo(hermetic.tmp / 'super')
    git('submodule', 'add', '-q', sub_src, 'sub', cwd=sup)
    ckpt('init', cwd=sup / 'sub')
    rows = _json.loads(ckpt('status', '--json', cwd=sup / 'sub').stdout)['rows']
    assert [(r['worktree'], r['state']) for r in rows] == [(os.fspath(sup / 'sub'), 'ok')]
