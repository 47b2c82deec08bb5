"""Scenario 6 of issue 8: repositories that are not the plain case.

A bare repository (and a worktree of one), a worktree whose directory was
deleted but not pruned, a detached HEAD, core.hooksPath, a sha256
repository, a submodule checked out in a superproject and a worktree added
from that submodule.  Every command, and the post-checkout hook firing on
`git worktree add`, either works -- on the right scratch dir, checked
against the ids git-ckpt keeps in git's own admin dirs -- or refuses in one
line with the fix and a non-zero exit.  Never a traceback, and never a write
into another repository's project dir (the submodule has its own identity,
not the superproject's).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import add_worktree, assert_error, ckpt, git, make_checkpoint, make_repo
from faults.figures import record_trial

COMMANDS = ('init', 'path', 'status', 'prune', 'archive', 'restore', 'remove', 'gc', 'migrate', 'link',
            'doctor', 'uninstall', 'hook', 'commit-guard')
HOOKS = ('hook', 'commit-guard')
KINDS = ('bare', 'bare-worktree', 'deleted-worktree', 'detached', 'hookspath', 'sha256', 'submodule',
         'submodule-worktree')
SCENARIO = {
    'bare': '6. bad repo: bare', 'bare-worktree': '6. bad repo: worktree of a bare repo',
    'deleted-worktree': '6. bad repo: worktree dir deleted, not pruned', 'detached': '6. bad repo: detached HEAD',
    'hookspath': '6. bad repo: core.hooksPath', 'sha256': '6. bad repo: sha256',
    'submodule': '6. bad repo: submodule', 'submodule-worktree': '6. bad repo: worktree of a submodule',
}
# What must be refused, and a word the one line must have.
# (doctor is a diagnosis: in a bare repository it runs the checks that need no
# worktree and says why it skipped the others.)
REFUSED = {('bare', c): 'bare repository' for c in COMMANDS if c not in HOOKS + ('doctor',)}
REFUSED[('deleted-worktree', 'remove')] = 'is gone'


class Repo:
    """One kind of repository, set up; `x` is the worktree the commands run in."""

    def __init__(self, kind: str, hermetic, init: bool) -> None:
        self.kind = kind
        self.root = hermetic.root
        self.base = hermetic.tmp / 'projects'
        self.other_projects: list[Path] = []   # project dirs the commands must not touch
        getattr(self, f'_make_{kind.replace("-", "_")}')(init)

    def _make_bare(self, init: bool) -> None:
        src = make_repo(self.base / 'src')
        self.bare = self.base / 'proj.git'
        git('clone', '-q', '--bare', src, self.bare)
        self.x = self.bare

    def _make_bare_worktree(self, init: bool) -> None:
        self._make_bare(init)
        self.x = add_worktree(self.bare, self.base / 'wt-main')
        self._init(init)

    def _make_deleted_worktree(self, init: bool) -> None:
        self.x = make_repo(self.base / 'proj')
        ckpt('init', cwd=self.x)  # so the deleted worktree had a scratch dir
        self.deleted = add_worktree(self.x, self.base / 'wt-del')
        self.deleted_scratch = expected_scratch(self.deleted, self.root)
        make_checkpoint(self.deleted_scratch / 'run1', 'checkpoint-1')
        shutil.rmtree(self.deleted)

    def _make_detached(self, init: bool) -> None:
        self.x = make_repo(self.base / 'proj')
        git('checkout', '-q', '--detach', cwd=self.x)
        self._init(init)

    def _make_hookspath(self, init: bool) -> None:
        self.x = make_repo(self.base / 'proj')
        git('config', 'core.hooksPath', '.githooks', cwd=self.x)
        self._init(init)

    def _make_sha256(self, init: bool) -> None:
        self.x = make_repo(self.base / 'proj', object_format='sha256')
        self._init(init)

    def _make_submodule(self, init: bool) -> None:
        sub_src = make_repo(self.base / 'sub-src')
        self.super = make_repo(self.base / 'super')
        git('submodule', 'add', '-q', sub_src, 'sub', cwd=self.super)
        git('commit', '-q', '-m', 'add sub', cwd=self.super)
        ckpt('init', cwd=self.super)
        super_scratch = expected_scratch(self.super, self.root)
        make_checkpoint(super_scratch / 'run1', 'checkpoint-1')
        self.other_projects.append(super_scratch.parent)
        self.x = self.super / 'sub'
        self._init(init)

    def _make_submodule_worktree(self, init: bool) -> None:
        self._make_submodule(init=False)
        self.x = add_worktree(self.super / 'sub', self.base / 'sub-wt')
        self._init(init)

    def _init(self, init: bool) -> None:
        if init:
            ckpt('init', cwd=self.x)

    def hooks_dir(self) -> Path:
        if self.kind == 'hookspath':
            return self.x / '.githooks'
        return Path(git('rev-parse', '--path-format=absolute', '--git-common-dir', cwd=self.x).stdout.strip()) / 'hooks'


def expected_scratch(wt: Path, root: Path) -> Path:
    """Where the worktree's scratch dir must be, from git's own admin dirs:
    <root>/<repo name>-<repo id>/<worktree leaf>."""
    git_dir, common = git('rev-parse', '--path-format=absolute', '--git-dir', '--git-common-dir',
                          cwd=wt).stdout.split('\n')[:2]
    repo_id, name = (Path(common) / 'ckpt-repo').read_text().split('\n')[0].split(' ', 1)
    leaf = (Path(git_dir) / 'ckpt-worktree').read_text().strip()
    return root / f'{name}-{repo_id}' / leaf


def project_dirs(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.name not in ('.git-ckpt', 'archive')} if root.is_dir() else set()


def tree(path: Path) -> dict:
    from conftest import tree_digest
    return tree_digest(path) if path.exists() else {}


# --- each command: prepare, run, check what it did ------------------------------
# prepare(repo) -> argv; check(repo, proc) asserts the effect on the right dir.

def _checkpoints(r: Repo) -> Path:
    scratch = expected_scratch(r.x, r.root)
    for step in (1, 2, 3):
        make_checkpoint(scratch / 'run1', f'checkpoint-{step}')
    r.scratch = scratch
    return scratch


def prepare(command: str, r: Repo) -> list:
    if r.kind == 'bare':
        return {'doctor': ['doctor', '--json'], 'remove': ['remove', 'wt'], 'restore': ['restore', 'x'],
                'migrate': ['migrate', 'outputs'], 'link': ['link', 'logs'], 'prune': ['prune', '--keep', '1'],
                'archive': ['archive'], 'gc': ['gc', '--delete', '--yes']}.get(command, [command])
    if command in ('prune', 'archive', 'restore'):
        _checkpoints(r)
    if command == 'prune':
        return ['prune', '--keep', '1', '--grace', '0']
    if command == 'archive':
        return ['archive', '--run', 'run1']
    if command == 'restore':
        ckpt('archive', '--run', 'run1', cwd=r.x)
        (r.archive,) = (r.root / 'archive').iterdir()
        return ['restore', r.archive]
    if command == 'remove':
        if r.kind == 'deleted-worktree':
            return ['remove', '--delete', '--yes', r.deleted]
        r.other = add_worktree(r.x, r.base / 'wt-r')
        r.other_scratch = expected_scratch(r.other, r.root)
        return ['remove', '--delete', '--yes', r.other]
    if command == 'gc':
        wt = add_worktree(r.x, r.base / 'wt-g')
        r.other_scratch = expected_scratch(wt, r.root)
        git('worktree', 'remove', wt, cwd=r.x)
        return ['gc', '--delete', '--yes']
    if command == 'migrate':
        (r.x / 'outputs').mkdir()
        (r.x / 'outputs' / 'w.bin').write_bytes(b'w' * 1000)
        return ['migrate', 'outputs']
    if command == 'link':
        return ['link', 'logs']
    if command == 'status':
        return ['status', '--json']
    if command == 'doctor':
        return ['doctor', '--json']
    return [command]


def check(command: str, r: Repo, proc) -> None:
    assert proc.returncode == 0, proc.stderr
    if r.kind == 'bare':  # doctor: the skipped repository checks name the reason
        report = json.loads(proc.stdout)
        assert any(c['status'] == 'skip' and 'bare repository' in c['message'] for c in report['checks']), report
        return
    scratch = expected_scratch(r.x, r.root)
    if command in ('init', 'path', 'link', 'migrate'):
        assert (scratch / '.git-ckpt.json').is_file(), scratch
        manifest = json.loads((scratch / '.git-ckpt.json').read_text())
        assert Path(manifest['worktree']) == r.x and manifest['project'] == scratch.parent.name
    if command == 'path':
        assert Path(proc.stdout.strip()) == scratch
    elif command == 'status':
        report = json.loads(proc.stdout)
        dirs = {os.path.realpath(w['scratch_dir']) for w in report['rows'] if w.get('scratch_dir')}
        assert os.path.realpath(scratch) in dirs, (scratch, dirs)
        (mine,) = [w for w in report['rows'] if w.get('scratch_dir') and
                   os.path.realpath(w['scratch_dir']) == os.path.realpath(scratch)]
        assert mine['worktree'] and os.path.realpath(mine['worktree']) == os.path.realpath(r.x), mine
        assert mine['state'] == 'ok', mine
        if r.kind == 'deleted-worktree':  # says so, with the fix
            (gone,) = [w for w in report['rows'] if w['worktree'] == os.fspath(r.deleted)]
            assert any('is gone' in p for p in gone['problems']), gone
        # every row is a worktree or a removed one: none is nameless
        assert all(w['worktree'] or w['removed_worktree'] for w in report['rows']), report['rows']
        assert all(Path(d).parent == Path(os.path.realpath(scratch.parent)) for d in dirs), dirs
    elif command == 'prune':
        assert sorted(p.name for p in (scratch / 'run1').iterdir()) == ['checkpoint-3']
    elif command == 'archive':
        assert not (scratch / 'run1').exists()
        (archived,) = (r.root / 'archive').iterdir()
        assert sorted(p.name for p in archived.iterdir() if not p.name.startswith('.')) == \
            ['checkpoint-1', 'checkpoint-2', 'checkpoint-3']
    elif command == 'restore':
        assert sorted(p.name for p in (scratch / 'run1').iterdir()) == ['checkpoint-1', 'checkpoint-2', 'checkpoint-3']
    elif command == 'remove':
        assert not r.other.exists() and not r.other_scratch.exists()
    elif command == 'gc':
        assert not r.other_scratch.exists() and scratch.is_dir()
        if r.kind == 'deleted-worktree':  # not pruned yet: git still has it, so it is no orphan
            assert (r.deleted_scratch / 'run1' / 'checkpoint-1').is_dir()
    elif command == 'migrate':
        assert os.readlink(r.x / 'outputs') == os.fspath(scratch / 'outputs')
        assert (scratch / 'outputs' / 'w.bin').read_bytes() == b'w' * 1000
    elif command == 'link':
        assert os.readlink(r.x / 'logs') == os.fspath(scratch / 'logs') and (scratch / 'logs').is_dir()
    elif command == 'doctor':
        report = json.loads(proc.stdout)
        assert report['problems'] == 0, report
    elif command == 'uninstall':
        hooks = r.hooks_dir()
        assert hooks.is_dir()
        assert not any(b'git-ckpt-hook' in p.read_bytes() for p in hooks.iterdir() if p.is_file())
    elif command == 'init':
        assert (r.hooks_dir() / 'post-checkout').is_file()


def fire_hook(r: Repo):
    """`git worktree add` from the repository: the installed hook makes the new
    worktree's scratch dir, under this repository's project dir."""
    new = r.base / 'wt-hook'
    proc = git('worktree', 'add', '-q', new, cwd=r.x, check=False)
    if proc.returncode == 0:
        new_scratch = expected_scratch(new, r.root)
        assert (new_scratch / '.git-ckpt.json').is_file(), proc.stderr
        assert new_scratch.parent == expected_scratch(r.x, r.root).parent
        assert 'git-ckpt: warning' not in proc.stderr, proc.stderr
    return proc


def fire_guard(r: Repo):
    """The pre-commit hook: a checkpoint staged with add -f is blocked (named,
    with the fix), a plain file then commits."""
    ckpt_dir = r.x / 'out' / 'checkpoint-1'
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / 'model.safetensors').write_bytes(b'w' * 100)
    git('add', '-f', 'out', cwd=r.x)
    blocked = git('commit', '-q', '-m', 'weights', cwd=r.x, check=False)
    assert blocked.returncode == 1, blocked.stderr
    assert 'commit blocked' in blocked.stderr and 'out/checkpoint-1/' in blocked.stderr, blocked.stderr
    assert 'git rm -r --cached' in blocked.stderr and 'Traceback' not in blocked.stderr
    git('rm', '-r', '-q', '--cached', 'out', cwd=r.x)
    (r.x / 'notes.txt').write_text('fine\n')
    git('add', 'notes.txt', cwd=r.x)
    return git('commit', '-q', '-m', 'notes', cwd=r.x, check=False)


@pytest.mark.parametrize('command', COMMANDS)
@pytest.mark.parametrize('kind', KINDS)
def test_command_works_or_says_why(kind, command, hermetic):
    if kind == 'bare' and command in HOOKS:
        pytest.skip('a bare repository cannot be set up (init is refused), so no hook is installed')
    r = Repo(kind, hermetic, init=command != 'init')
    argv = prepare(command, r)
    projects_before = project_dirs(r.root)
    others_before = {p: tree(p) for p in r.other_projects}
    if command in HOOKS:
        proc = None
        try:
            proc = (fire_hook if command == 'hook' else fire_guard)(r)
            failure = None if proc.returncode == 0 else proc.stderr
        except AssertionError as exc:
            failure = str(exc)
    else:
        proc = ckpt(*argv, cwd=r.x, check=False)
        failure = None
        try:
            assert 'Traceback' not in proc.stdout + proc.stderr and 'internal error' not in proc.stderr
            if (kind, command) in REFUSED:
                line = assert_error(proc, REFUSED[(kind, command)])
                assert '; ' in line, line
            else:
                check(command, r, proc)
        except AssertionError as exc:
            failure = f'{exc}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}'
    # Never a wrong directory: no project dir but this repository's appears,
    # and every other repository's project dir is exactly as it was.
    new_projects = project_dirs(r.root) - projects_before
    if kind != 'bare':
        allowed = {expected_scratch(r.x, r.root).parent.name}
        if new_projects - allowed:
            failure = (failure or '') + f'\nnew project dirs {new_projects - allowed}'
    elif new_projects:
        failure = (failure or '') + f'\nnew project dirs {new_projects}'
    touched = sum(1 for p, digest in others_before.items() if tree(p) != digest)
    record_trial(SCENARIO[kind], failed=failure is not None or touched > 0, outside_touched=touched)
    assert touched == 0, 'another repository\'s project dir was changed'
    assert failure is None, failure


def test_submodule_has_its_own_identity(hermetic):
    """The submodule (and a worktree added from it) get the submodule's own
    project dir, never the superproject's, and a dir of their own."""
    r = Repo('submodule-worktree', hermetic, init=True)
    sub = r.super / 'sub'
    paths = {name: Path(ckpt('path', cwd=where).stdout.strip())
             for name, where in (('super', r.super), ('sub', sub), ('sub-wt', r.x))}
    ok = (paths['sub'].parent == paths['sub-wt'].parent != paths['super'].parent
          and len(set(paths.values())) == 3 and paths['sub'].parent.name.startswith('sub-'))
    record_trial(SCENARIO['submodule'], failed=not ok)
    assert paths['sub'].parent == paths['sub-wt'].parent, paths
    assert paths['sub'].parent != paths['super'].parent, paths
    assert len(set(paths.values())) == 3, paths
    assert paths['sub'].parent.name.startswith('sub-'), paths
