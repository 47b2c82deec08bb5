"""Scenario 5 of issue 8: another user on the same scratch filesystem.

Everything runs as root, so each attack is made for real by a second,
unprivileged user (`runuser`): the dirs, files and symlinks it plants are
owned by its uid.  Dirs under ours are 0700, so an attack below one of our
dirs is staged through a window in which that dir was loose (chmod 0777 for
the attacker's one command, then back to 0700): the state an older tool, a
bad umask or a careless chmod leaves behind.

For every command that writes (init, path, the post-checkout hook on
`git worktree add`, setup(), prune, archive, restore, remove, gc, migrate,
link) and every attack that lies on its path: git-ckpt refuses with one line
naming the problem and the fix (the hook: one warning line, the checkout
goes on), and the attacker's dir or target is byte-for-byte unchanged with
nothing new in it.  Every command runs under umask 000, so any directory
git-ckpt made with a default mode would show up as 0777.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import (
    UNPRIVILEGED_USER, add_worktree, assert_error, ckpt, git, make_checkpoint, make_repo, run,
)
from faults.figures import record_trial

UMASK0 = ['sh', '-c', 'umask 000 && exec "$@"', 'sh']

# The script a training job runs: setup(), then the output_dir every
# TrainingArguments(output_dir=...) is rewritten through (hf_patch calls it;
# importing transformers here would cost seconds per case for nothing).
SETUP_SCRIPT = '''
import sys
import git_ckpt
from git_ckpt.errors import GitCkptError
try:
    git_ckpt.setup(quiet=True)
    if len(sys.argv) > 1:
        from git_ckpt.hf import _rewrite_output_dir
        _rewrite_output_dir(sys.argv[1])
except GitCkptError as exc:
    print(f'git-ckpt: error: {exc}', file=sys.stderr)
    sys.exit(1)
'''

COMMANDS = ('init', 'path', 'hook', 'setup', 'prune', 'archive', 'restore', 'remove', 'gc', 'migrate', 'link')
LOCKING = ('prune', 'archive', 'restore', 'remove', 'gc', 'migrate')
ARCHIVING = ('archive', 'remove', 'gc')


# --- the attacker -------------------------------------------------------------

def attacker(script: str) -> None:
    """Run a shell script as the other user; it must succeed (the attack is real)."""
    run(['runuser', '-u', UNPRIVILEGED_USER, '--', 'sh', '-c', f'umask 022; {script}'])


def attacker_may(script: str) -> int:
    """Run a shell script as the other user; return its exit status."""
    return run(['runuser', '-u', UNPRIVILEGED_USER, '--', 'sh', '-c', script], check=False).returncode


@contextlib.contextmanager
def loose(path: Path, root: Path):
    """The window in which one of our dirs was writable by anyone (and the
    dirs between it and the root could be passed through)."""
    chain = [path] + [p for p in path.parents if root in p.parents]
    modes = {p: stat.S_IMODE(os.stat(p).st_mode) for p in chain}
    for p in chain:
        os.chmod(p, 0o777 if p == path else 0o711)
    try:
        yield
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)


def move_aside(path: Path, sandbox: Path) -> None:
    """Our dir goes out of the way (out of the root: nothing may find it)."""
    if os.path.lexists(path):
        os.rename(path, Path(tempfile.mkdtemp(dir=sandbox)) / path.name)


def plant_dir(path: Path, *, empty: bool = False) -> Path:
    """The attacker's dir at `path`, with a file in it (as if it waited for
    our checkpoints), or empty (as if it were the empty target `link` leaves)."""
    attacker(f'mkdir -m 777 {q(path)}' + ('' if empty else f' && echo planted > {q(path)}/planted.txt'))
    return path


def q(path) -> str:
    import shlex
    return shlex.quote(os.fspath(path))


def snapshot(path: Path) -> object:
    """Everything that could show a write: type, owner, mode, mtime, content,
    and the same for every entry below (a symlink: its text and its target's)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    head = (stat.S_IFMT(st.st_mode), st.st_uid, stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    if stat.S_ISLNK(st.st_mode):
        target = os.path.join(os.path.dirname(path), os.readlink(path))
        return head + (os.readlink(path), snapshot(Path(target)))
    if stat.S_ISREG(st.st_mode):
        return head + (hashlib.sha256(Path(path).read_bytes()).hexdigest(),)
    entries = {}
    if stat.S_ISDIR(st.st_mode):
        for name in sorted(os.listdir(path)):
            entries[name] = snapshot(Path(path) / name)
    return head + (entries,)


# --- the victim's setup -------------------------------------------------------

@pytest.fixture
def sandbox(unprivileged_user):
    """A root-owned 0755 dir both users reach (pytest's tmp dirs are 0700):
    shared/ is a site-wide scratch (root-owned, 1777: the allowed shared
    root), att/ is the attacker's own dir."""
    path = Path(tempfile.mkdtemp(prefix='git-ckpt-mu-'))
    path.chmod(0o755)
    (path / 'shared').mkdir()
    (path / 'shared').chmod(0o1777)
    (path / 'att').mkdir()
    os.chown(path / 'att', unprivileged_user.pw_uid, unprivileged_user.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Victim:
    """A repository set up for one command: its scratch root is the shared
    sticky root, and what the command acts on exists (checkpoints, an
    archive, a worktree to remove, an orphan, a dir to migrate)."""

    def __init__(self, hermetic, sandbox: Path, monkeypatch, command: str) -> None:
        self.command = command
        self.sandbox = sandbox
        self.root = sandbox / 'shared'
        monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(self.root))
        self.repo = make_repo(hermetic.tmp / 'projects' / 'proj')
        ckpt('init', cwd=self.repo)
        self.scratch = Path(ckpt('path', cwd=self.repo).stdout.strip())
        self.project = self.scratch.parent
        make_checkpoint(self.scratch / 'run1', 'checkpoint-1')
        make_checkpoint(self.scratch / 'run1', 'checkpoint-2')
        self.cwd = self.repo
        self.args: list[str] = []
        self.target = self.scratch   # the scratch dir the command acts on
        getattr(self, f'_prepare_{command}', lambda: None)()

    def _prepare_hook(self) -> None:
        # The new worktree's id is fixed before its checkout, so its scratch
        # dir can be attacked; the hook then fires as `git worktree add` fires it.
        self.new_wt = self.repo.parent / 'wt-new'
        git('worktree', 'add', '-q', '--no-checkout', self.new_wt, cwd=self.repo)
        self.target = Path(ckpt('path', '--no-create', cwd=self.new_wt).stdout.strip())

    def _prepare_restore(self) -> None:
        make_checkpoint(self.scratch / 'run0', 'checkpoint-5')
        ckpt('archive', '--run', 'run0', cwd=self.repo)
        (self.archive,) = (self.root / 'archive').iterdir()
        self.args = [os.fspath(self.archive)]

    def _prepare_remove(self) -> None:
        wt = add_worktree(self.repo, self.repo.parent / 'wt-b')
        self.target = Path(ckpt('path', cwd=wt).stdout.strip())
        make_checkpoint(self.target / 'run1', 'checkpoint-1')
        self.args = ['--archive', '--yes', os.fspath(wt)]

    def _prepare_gc(self) -> None:
        wt = add_worktree(self.repo, self.repo.parent / 'wt-gone')
        self.target = Path(ckpt('path', cwd=wt).stdout.strip())
        make_checkpoint(self.target / 'run1', 'checkpoint-1')
        git('worktree', 'remove', wt, cwd=self.repo)
        self.args = ['--archive']

    def _prepare_migrate(self) -> None:
        (self.repo / 'outputs').mkdir()
        (self.repo / 'outputs' / 'weights.bin').write_bytes(b'w' * 1000)
        self.args = ['outputs']

    def _prepare_link(self) -> None:
        self.args = ['logs']

    def _prepare_prune(self) -> None:
        self.args = ['--keep', '1', '--grace', '0']

    # The dir the command writes new data into (the "checkpoint dir" attack).
    def write_target(self) -> Path:
        return {'setup': self.scratch / 'run9', 'restore': self.scratch / 'run0',
                'migrate': self.scratch / 'outputs', 'link': self.scratch / 'logs',
                'prune': self.scratch / 'run1' / 'checkpoint-0'}[self.command]

    def lock_file(self) -> Path:
        return self.root / '.git-ckpt' / 'locks' / self.project.name / f'{self.target.name}.lock'

    def run(self):
        if self.command == 'hook':
            sha = git('rev-parse', 'HEAD', cwd=self.repo).stdout.strip()
            hook = self.repo / '.git' / 'hooks' / 'post-checkout'
            return run([*UMASK0, hook, '0' * 40, sha, '1'], cwd=self.new_wt, check=False)
        if self.command == 'setup':
            extra = ['run9']
            return run([*UMASK0, sys.executable, '-c', SETUP_SCRIPT, *extra], cwd=self.cwd, check=False)
        return run([*UMASK0, 'git', 'ckpt', self.command, *self.args], cwd=self.cwd, check=False)


def refused(proc, victim: Victim, attack: str, *needles: str) -> str:
    """One line naming the problem and the fix; for the hook a warning (the
    checkout is never failed), for everything else an error and exit != 0."""
    if (attack, victim.command) in IGNORED:
        # Not on the command's path: it works and leaves the attacker's dir alone.
        assert proc.returncode == 0, proc.stderr
        assert 'Traceback' not in proc.stderr + proc.stdout
        return ''
    if victim.command == 'hook':
        assert proc.returncode == 0, proc.stderr
        assert 'Traceback' not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith('git-ckpt: warning:')]
        assert len(lines) == 1, proc.stderr
        line = lines[0]
    elif (attack, victim.command) == ('precreated-checkpoint', 'prune'):
        # prune reports per checkpoint: the foreign one is a failure line, exit 1.
        assert proc.returncode == 1, proc.stderr
        assert 'Traceback' not in proc.stderr + proc.stdout
        lines = [line for line in proc.stderr.splitlines() if 'owned by' in line]
        assert len(lines) == 1, proc.stderr
        line = lines[0]
    else:
        line = assert_error(proc)
    for needle in needles:
        assert needle in line, f'{needle!r} not in {line!r}'
    assert '; ' in line, f'no fix in {line!r}'
    return line


# --- attacks ------------------------------------------------------------------
# Each returns (the path whose snapshot must not change, words the message must have).

def attack_precreated_root(v: Victim, monkeypatch):
    root = v.sandbox / 'shared' / 'my-root'
    plant_dir(root)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    return root, [os.fspath(root), f'owned by {UNPRIVILEGED_USER}']


def attack_precreated_project(v: Victim, monkeypatch):
    move_aside(v.project, v.sandbox)  # as if our dir had never been made
    plant_dir(v.project)
    return v.project, [v.project.name, f'owned by {UNPRIVILEGED_USER}']


def attack_precreated_worktree(v: Victim, monkeypatch):
    move_aside(v.target, v.sandbox)
    with loose(v.project, v.root):
        plant_dir(v.target)
    return v.target, [v.target.name, f'owned by {UNPRIVILEGED_USER}']


def attack_precreated_checkpoint(v: Victim, monkeypatch):
    target = v.write_target()
    with loose(target.parent, v.root):
        plant_dir(target, empty=v.command == 'migrate')
        if v.command == 'prune':  # a complete, old checkpoint: prune would delete it
            attacker(f'echo {{}} > {q(target)}/trainer_state.json && touch -d "2 hours ago" {q(target)} '
                     f'{q(target)}/planted.txt {q(target)}/trainer_state.json')
    return target, [target.name, f'owned by {UNPRIVILEGED_USER}']


def attack_precreated_archive_area(v: Victim, monkeypatch):
    area = v.root / 'archive'
    move_aside(area, v.sandbox)
    plant_dir(area)
    return area, [os.fspath(area), f'owned by {UNPRIVILEGED_USER}']


def attack_precreated_archive_dir(v: Victim, monkeypatch):
    area = v.sandbox / 'shared' / 'my-archives'
    plant_dir(area)
    git('config', 'ckpt.archiveDir', os.fspath(area), cwd=v.repo)
    return area, [os.fspath(area), f'owned by {UNPRIVILEGED_USER}']


def attack_precreated_archive_partial(v: Victim, monkeypatch):
    """An archive across filesystems resumes an interrupted copy from its
    `.partial`: one planted with a journal naming our scratch dir must not be
    resumed into (nor deleted to restart)."""
    import json
    import time
    from git_ckpt import constants as C
    dest_root = v.shm  # ours, 0700, on another filesystem (so a copy, not a rename)
    v.args = ['--to', os.fspath(dest_root)]
    partial = dest_root / f'proj-{time.strftime("%Y-%m-%d")}.partial'
    journal = json.dumps({'source': os.path.realpath(v.scratch), 'started': '2026-01-01T00:00:00+00:00'})
    with loose(dest_root, dest_root.parent):
        attacker(f'mkdir -m 777 {q(partial)} && printf "%s\\n" {q(journal)} > {q(partial / C.TRANSFER_JOURNAL_NAME)}'
                 f' && echo planted > {q(partial)}/planted.txt')
    return partial, [partial.name, f'owned by {UNPRIVILEGED_USER}']


def _evil_dir(v: Victim) -> Path:
    evil = v.sandbox / 'att' / 'evil'
    if not evil.exists():
        attacker(f'mkdir -m 777 {q(evil)} && echo evil > {q(evil)}/evil.txt')
    return evil


def _plant_link(v: Victim, where: Path, parent_is_ours: bool, target: Path | None = None):
    target = _evil_dir(v) if target is None else target
    move_aside(where, v.sandbox)
    if parent_is_ours:
        with loose(where.parent, v.root):
            attacker(f'ln -s {q(target)} {q(where)}')
    else:
        attacker(f'ln -s {q(target)} {q(where)}')
    return where, [where.name, 'symlink']


def attack_symlink_project(v: Victim, monkeypatch):
    return _plant_link(v, v.project, parent_is_ours=False)


def attack_symlink_worktree(v: Victim, monkeypatch):
    return _plant_link(v, v.target, parent_is_ours=True)


def attack_symlink_archive_area(v: Victim, monkeypatch):
    return _plant_link(v, v.root / 'archive', parent_is_ours=False)


def attack_symlink_lock(v: Victim, monkeypatch):
    lock = v.lock_file()
    from git_ckpt.scratch import ensure_private_dir
    ensure_private_dir(v.root, lock.parent.relative_to(v.root))  # as an earlier command left it
    evil_file = v.sandbox / 'att' / 'evil.lock'
    attacker(f'echo not-a-lock > {q(evil_file)} && chmod 666 {q(evil_file)}')
    return _plant_link(v, lock, parent_is_ours=True, target=evil_file)


def attack_symlink_manifest(v: Victim, monkeypatch):
    manifest = v.target / '.git-ckpt.json'
    if not v.target.exists():  # the hook's new worktree: its dir exists, without a manifest yet
        from git_ckpt.scratch import ensure_private_dir
        ensure_private_dir(v.root, v.target.relative_to(v.root))
    evil_file = v.sandbox / 'att' / 'manifest.json'
    content = manifest.read_text() if manifest.exists() else \
        '{"schema": 1, "worktree_id": "%s"}\n' % v.target.name
    attacker(f'printf %s {q(content)} > {q(evil_file)} && chmod 666 {q(evil_file)}')
    return _plant_link(v, manifest, parent_is_ours=True, target=evil_file)


def attack_world_writable_root(v: Victim, monkeypatch):
    os.chmod(v.root, 0o777)  # the sticky bit dropped: anyone may rename or delete our dirs
    return v.root, [os.fspath(v.root), 'world-writable without the sticky bit']


ATTACKS = {
    # name: (scenario, attack, the commands whose path it lies on)
    'precreated-root': ('5. another user: pre-created scratch path', attack_precreated_root, COMMANDS),
    'precreated-project': ('5. another user: pre-created scratch path', attack_precreated_project, COMMANDS),
    'precreated-worktree': ('5. another user: pre-created scratch path', attack_precreated_worktree, COMMANDS),
    'precreated-checkpoint': ('5. another user: pre-created scratch path', attack_precreated_checkpoint,
                              ('setup', 'restore', 'migrate', 'link', 'prune')),
    'precreated-archive-area': ('5. another user: pre-created scratch path', attack_precreated_archive_area,
                                ARCHIVING),
    'precreated-archive-dir': ('5. another user: pre-created scratch path', attack_precreated_archive_dir,
                               ARCHIVING),
    'precreated-archive-partial': ('5. another user: pre-created scratch path', attack_precreated_archive_partial,
                                   ('archive',)),
    'world-writable-root': ('5. world-writable root without sticky bit', attack_world_writable_root, COMMANDS),
    'symlink-project': ('5. symlink planted for a dir', attack_symlink_project, COMMANDS),
    'symlink-worktree': ('5. symlink planted for a dir', attack_symlink_worktree, COMMANDS),
    'symlink-archive-area': ('5. symlink planted for a dir', attack_symlink_archive_area, ARCHIVING),
    'symlink-lock': ('5. symlink planted for a dir', attack_symlink_lock, LOCKING),
    'symlink-manifest': ('5. symlink planted for a dir', attack_symlink_manifest, COMMANDS),
}

# gc acts on orphans only: an orphan's dir replaced by someone else's (or
# whose manifest is a link) is no longer a managed dir, so gc does not see it.
IGNORED = {('precreated-worktree', 'gc'), ('symlink-worktree', 'gc'), ('symlink-manifest', 'gc')}

CASES = [pytest.param(attack, command, id=f'{attack}-{command}')
         for attack, (_, _, commands) in ATTACKS.items() for command in commands]


@pytest.mark.parametrize(('attack', 'command'), CASES)
def test_attack_is_refused_and_nothing_is_written(attack, command, hermetic, sandbox, monkeypatch, shm_dir):
    scenario, make_attack, _ = ATTACKS[attack]
    victim = Victim(hermetic, sandbox, monkeypatch, command)
    victim.shm = shm_dir
    where, needles = make_attack(victim, monkeypatch)
    before = snapshot(where)
    proc = victim.run()
    after = snapshot(where)
    try:
        refused(proc, victim, attack, *needles)
        ok = True
    except AssertionError:
        ok = False
    record_trial(scenario, failed=not ok or before != after, outside_touched=int(before != after))
    assert before == after, f'{where} changed:\nbefore {before}\nafter  {after}\n{proc.stderr}'
    refused(proc, victim, attack, *needles)


# --- what a sticky shared root allows --------------------------------------------

def all_dirs(path: Path):
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            yield Path(dirpath) / name


def test_every_dir_git_ckpt_creates_is_0700(hermetic, sandbox, monkeypatch, shm_dir):
    """Every command on a sticky shared root, under umask 000: each dir under
    our part of the root (project, worktree, run, link and migrate targets,
    state, archive area, archives) and under an explicit --to is 0700 and ours."""
    root = sandbox / 'shared'
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    repo = make_repo(hermetic.tmp / 'projects' / 'proj')

    def c(*args, cwd=repo):
        return run([*UMASK0, 'git', 'ckpt', *args], cwd=cwd)

    run([*UMASK0, 'git', 'ckpt', 'init'], cwd=repo)
    scratch = Path(c('path').stdout.strip())
    wt = repo.parent / 'wt-b'
    run([*UMASK0, 'git', 'worktree', 'add', '-q', wt], cwd=repo)  # the hook makes its scratch dir
    run([*UMASK0, sys.executable, '-c', SETUP_SCRIPT, 'outputs/run1'], cwd=repo)
    for name in ('checkpoint-1', 'checkpoint-2'):
        ckpt_dir = make_checkpoint(scratch / 'outputs' / 'run1', name)
        ckpt_dir.chmod(0o700)  # the training job's own dirs: made private like ours
    (repo / 'data').mkdir(mode=0o700)
    (repo / 'data' / 'x.bin').write_bytes(b'x' * 100)
    c('migrate', 'data')
    c('link', 'logs')
    c('prune', '--keep', '1', '--grace', '0')
    c('archive', '--run', 'outputs/run1')
    (archived,) = (root / 'archive').iterdir()
    c('restore', os.fspath(archived))
    c('archive', '--run', 'outputs/run1', '--to', os.fspath(shm_dir / 'deep' / 'archives'))
    wt_scratch = Path(c('path', cwd=wt).stdout.strip())
    make_checkpoint(wt_scratch / 'r', 'checkpoint-1').chmod(0o700)
    (wt_scratch / 'r').chmod(0o700)
    c('remove', '--keep', os.fspath(wt))
    c('gc', '--archive')

    ours = [root / C_STATE, root / 'archive', scratch.parent]
    checked = []
    for top in ours + [shm_dir / 'deep']:
        for path in [top, *all_dirs(top)]:
            st = os.lstat(path)
            checked.append(path)
            assert stat.S_ISDIR(st.st_mode), path
            assert st.st_uid == os.geteuid(), path
            assert stat.S_IMODE(st.st_mode) == 0o700, f'{path} is {oct(stat.S_IMODE(st.st_mode))}'
    ok = len(checked) > 10
    record_trial('5. sticky shared root: what is allowed', failed=not ok)
    assert ok, checked


C_STATE = '.git-ckpt'


def test_sticky_root_keeps_the_other_user_out(hermetic, sandbox, monkeypatch):
    """With the sticky bit, the other user may create dirs of its own next to
    ours, but can neither enter, rename nor delete ours; prune, gc and status
    --all leave its dirs alone (even one that claims to be a project dir)."""
    root = sandbox / 'shared'
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    repo = make_repo(hermetic.tmp / 'projects' / 'proj')
    ckpt('init', cwd=repo)
    scratch = Path(ckpt('path', cwd=repo).stdout.strip())
    make_checkpoint(scratch / 'run1', 'checkpoint-1')
    make_checkpoint(scratch / 'run1', 'checkpoint-2')
    theirs = root / 'theirs-0123abcd'
    attacker(f'mkdir {q(theirs)} && mkdir {q(theirs)}/wt-89abcdef && '
             f'echo \'{{"schema": 1, "repo": "/x"}}\' > {q(theirs)}/.git-ckpt-repo.json && '
             f'echo \'{{"schema": 1, "worktree_id": "wt-89abcdef"}}\' > {q(theirs)}/wt-89abcdef/.git-ckpt.json')
    ours_before, theirs_before = snapshot(scratch.parent), snapshot(theirs)
    denied = [attacker_may(f'ls {q(scratch.parent)}'), attacker_may(f'rm -rf {q(scratch.parent)}'),
              attacker_may(f'mv {q(scratch.parent)} {q(root)}/stolen'),
              attacker_may(f'mkdir {q(scratch)}/run2')]
    assert snapshot(scratch.parent) == ours_before
    ckpt('prune', '--keep', '1', '--grace', '0', '--all-worktrees', cwd=repo)
    ckpt('gc', '--delete', '--yes', cwd=repo)
    status = ckpt('status', '--all', '--json', cwd=repo)
    ok = all(rc != 0 for rc in denied) and snapshot(theirs) == theirs_before \
        and not (scratch / 'run1' / 'checkpoint-1').exists() and (scratch / 'run1' / 'checkpoint-2').is_dir()
    record_trial('5. sticky shared root: what is allowed', failed=not ok)
    assert all(rc != 0 for rc in denied), denied
    assert snapshot(theirs) == theirs_before
    assert (scratch / 'run1' / 'checkpoint-2').is_dir() and not (scratch / 'run1' / 'checkpoint-1').exists()
    assert 'Traceback' not in status.stderr


# --- git-ckpt run by the other user ---------------------------------------------

@pytest.mark.parametrize(('mode', 'works'), [(0o755, False), (0o700, False), (0o777, False), (0o1777, True)],
                         ids=['root-0755', 'root-0700', 'root-0777', 'root-1777'])
def test_run_as_other_user_against_a_root_owned_by_root(mode, works, as_unprivileged):
    """The unprivileged user's git-ckpt against a root-owned root: refused
    cleanly unless it is a sticky shared dir (like /tmp), where its own dirs
    are 0700 and its own."""
    user = as_unprivileged
    root = user.sandbox / 'root-owned'
    root.mkdir()
    root.chmod(mode)
    (root / 'site-file').write_text('root data\n')
    repo = user.sandbox / 'repo'
    make_repo(repo)
    user.own(repo)
    before = snapshot(root)
    proc = user.run('-m', 'git_ckpt', 'path', cwd=repo, GIT_CKPT_ROOT=os.fspath(root))
    if works:
        ok = proc.returncode == 0 and 'Traceback' not in proc.stderr
        created = Path(proc.stdout.strip())
        made = [created.parent, created]
        ok = ok and all(os.lstat(p).st_uid == user.entry.pw_uid and
                        stat.S_IMODE(os.lstat(p).st_mode) == 0o700 for p in made)
        record_trial('5. another user runs git-ckpt: root owned by root', failed=not ok)
        assert proc.returncode == 0, proc.stderr
        for p in made:
            assert os.lstat(p).st_uid == user.entry.pw_uid
            assert stat.S_IMODE(os.lstat(p).st_mode) == 0o700
        assert (root / 'site-file').read_text() == 'root data\n'
    else:
        after = snapshot(root)
        try:
            line = assert_error(proc)
            ok = before == after and os.fspath(root) in line
        except AssertionError:
            ok = False
        record_trial('5. another user runs git-ckpt: root owned by root', failed=not ok,
                     outside_touched=int(before != after))
        assert before == after
        line = assert_error(proc)
        assert os.fspath(root) in line and '; ' in line
