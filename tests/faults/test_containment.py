"""Scenario 4 of issue 8: containment, property-based.

Hypothesis draws scratch trees full of ways out of the managed root
(tests/faults/trees.py); each example runs a real command on them and then
compares checksummed sentinels outside the root (content, mode, mtime, link
targets, the link count of hard-linked inodes) and the tree inside the root
with what the command should have left.  Races are real: a checkpoint dir
(or its run, or the scratch dir) is swapped for a symlink to an outside copy
between git-ckpt's listing and its delete, in-process at the exact point
(the real deletion code runs) or by a second process looping while the CLI
runs.  Every example is one trial in the figures table.

Examples per property: GIT_CKPT_CONTAIN_EXAMPLES (default below); the
examples are derandomized, so a failure reproduces with the same command.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ckpt, git, scratch_path
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from faults import trees
from faults.figures import record_trial
from faults.trees import Outside, changed, minus, snapshot, tree_state, without_inodes
from git_ckpt import constants as C

EXAMPLES = int(os.environ.get('GIT_CKPT_CONTAIN_EXAMPLES', '15'))
PHASES = None if os.environ.get('GIT_CKPT_CONTAIN_SHRINK', '1') == '1' else [Phase.explicit, Phase.generate]
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    **({} if PHASES is None else {'phases': PHASES}),
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])
FEW = settings(PROPERTY, max_examples=max(4, EXAMPLES // 3))
MANIFEST = os.fsencode(C.MANIFEST_NAME)
ARCHIVE_MANIFEST = os.fsencode(C.TRANSFER_MANIFEST_NAME)
SHM = Path('/dev/shm')


def cli(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`git ckpt ARGS` with bytes output (paths in it need not be UTF-8)."""
    argv = ['git', 'ckpt', *(a if isinstance(a, (str, bytes, Path)) else str(a) for a in args)]
    return subprocess.run(argv, cwd=cwd, capture_output=True, env=env)


def said(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout + proc.stderr).decode(errors='backslashreplace')


class Sandbox:
    def __init__(self, repo: Path, hermetic) -> None:
        self.repo, self.root, self.tmp = repo, hermetic.root, hermetic.tmp
        self.outside = Outside.build(hermetic.tmp / 'outside')
        self.scratch = Path(ckpt('path', cwd=repo).stdout.strip())
        self.inodes = self.outside.inodes()

    def fresh(self, spec: trees.Spec, where: Path | None = None) -> dict:
        """Rebuild the scratch dir (or `where`) from `spec`; its state."""
        where = where or self.scratch
        trees.clear(where, keep=(MANIFEST,))
        shutil.rmtree(self.outside.base / 'victims', ignore_errors=True)
        trees.build(where, spec, self.outside)
        return self.state(where)

    def state(self, where: Path) -> dict:
        return tree_state(where, self.inodes)


@pytest.fixture
def sandbox(inited_repo, hermetic) -> Sandbox:
    return Sandbox(inited_repo, hermetic)


@pytest.fixture
def shm_area(tmp_path):
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip('/dev/shm is not a second filesystem here')
    path = SHM / f'git-ckpt-contain-{os.getpid()}-{tmp_path.name}'
    path.mkdir(mode=0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nlink_delta(before: list[dict], after: list[dict]) -> dict[int, int]:
    """How the count of in-root hard links to each outside inode should move."""
    delta: dict[int, int] = {}
    for state in before:
        for ino, n in trees.outside_inode_counts(state).items():
            delta[ino] = delta.get(ino, 0) - n
    for state in after:
        for ino, n in trees.outside_inode_counts(state).items():
            delta[ino] = delta.get(ino, 0) + n
    return delta


def differences(actual: dict, expected: dict) -> list[str]:
    keys = sorted(k for k in actual.keys() | expected.keys() if actual.get(k) != expected.get(k))
    return [f'{k!r}: {expected.get(k)} -> {actual.get(k)}' for k in keys[:10]]


# Rows of the figures table (the README keeps it short); the trial's own
# name, with its stage, command or mode, is in its assertion messages.
ROWS = {
    'status': '4. containment: status and prune --dry-run on random trees',
    'prune': '4. containment: prune on random trees',
    'prune swap': '4. containment: prune, a checkpoint, run or scratch dir swapped for a symlink before delete',
    'prune race': '4. containment: prune while another process swaps dirs for symlinks',
    'archive': '4. containment: archive on random trees (dir and tar.zst, same and across filesystems)',
    'restore': '4. containment: restore --force on random trees',
    'remove': '4. containment: remove and gc (--delete, --archive) on random trees',
    'migrate': '4. containment: migrate on random trees (same and across filesystems)',
    'scratch link': '4. containment: scratch dir replaced by a symlink to an outside copy (12 commands)',
    'move swap': '4. containment: archive, restore, migrate with a dir swapped for a symlink before delete/move',
    'tampered': '4. containment: restore of a tampered archive (outside names, planted hard link)',
}


def trial(scenario: str, row: str, outside_before: dict, sb: Sandbox, *, delta: dict[int, int] | None = None,
          inside: list[str] = ()) -> None:
    """Record one trial (in the figures row ROWS[row]), then assert on it:
    nothing outside the root touched, and `inside` (what differs from the
    expected tree, or a bad exit) empty."""
    touched = changed(outside_before, snapshot(sb.outside.base), delta)
    record_trial(ROWS[row], failed=bool(touched or inside), outside_touched=len(touched))
    assert not touched, f'{scenario}: changed outside the root: {touched[:10]}'
    assert not inside, f'{scenario}: ' + '\n'.join(inside)


def exit_ok(proc: subprocess.CompletedProcess, what: str) -> list[str]:
    if proc.returncode == 0 and b'Traceback' not in proc.stderr:
        return []
    return [f'{what} exited {proc.returncode}: {said(proc)[-2000:]}']


# --- prune, dry run and status -------------------------------------------------------

@PROPERTY
@given(data=st.data())
def test_prune_on_random_trees(sandbox, data):
    sb = sandbox
    spec = data.draw(trees.specs(sb.outside), label='spec')
    keep = data.draw(st.integers(1, 3), label='keep')
    before = sb.fresh(spec)
    outside = snapshot(sb.outside.base)

    status = cli('status', cwd=sb.repo)
    as_json = cli('status', '--json', cwd=sb.repo)
    trial('4. containment: status on random trees', 'status', outside, sb,
          inside=exit_ok(status, 'status') + exit_ok(as_json, 'status --json')
          + differences(sb.state(sb.scratch), before))

    dry = cli('prune', '--keep', keep, '--dry-run', cwd=sb.repo)
    trial('4. containment: prune --dry-run on random trees', 'status', outside, sb,
          inside=exit_ok(dry, 'prune --dry-run') + differences(sb.state(sb.scratch), before))

    real = cli('prune', '--keep', keep, cwd=sb.repo)
    expected = minus(before, trees.expected_prune(spec, keep))
    trial('4. containment: prune on random trees', 'prune', outside, sb, delta=nlink_delta([before], [expected]),
          inside=exit_ok(real, 'prune') + differences(sb.state(sb.scratch), expected))


# --- a checkpoint dir (or its run, or the scratch dir) swapped for a symlink ----------

class Attacker:
    """Swaps a real dir inside the root for a symlink to a dir outside: the
    dir is moved aside (still inside the root) and what it held is recorded,
    so the test can check nothing of it was lost either."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.victim = sb.outside.mirror('generic')
        (self.victim / 'sub').mkdir()
        for rel in ('model.safetensors', 'trainer_state.json', 'sub/x.bin'):
            (self.victim / rel).write_bytes(os.urandom(64))
        self.swaps: list[tuple[Path, Path, dict]] = []   # (path, aside, its state when moved)

    def mirror(self, path: Path, name: str) -> Path:
        """An outside copy of `path` (same names, sizes and mtimes): a
        symlink to it fools any check that looks through the link."""
        copy = self.sb.outside.base / 'victims' / name
        shutil.copytree(path, copy, symlinks=True)
        return copy

    def swap(self, path: Path, target: Path | None = None) -> None:
        aside = self.sb.root / f'.aside-{len(self.swaps)}'
        state = self.sb.state(path)
        os.rename(path, aside)
        os.symlink(target or self.victim, path)
        self.swaps.append((path, aside, state))

    def lost(self) -> list[str]:
        """What moved aside is all still there."""
        return [f'aside {aside}: ' + '; '.join(differences(self.sb.state(aside), state))
                for _, aside, state in self.swaps if self.sb.state(aside) != state]

    def undo(self) -> None:
        for path, aside, _ in reversed(self.swaps):
            if os.path.islink(path):
                os.unlink(path)
            if not os.path.lexists(path) and os.path.isdir(path.parent):
                os.rename(aside, path)
            else:
                trees.clear(aside)
                os.rmdir(aside)
        self.swaps.clear()


SWAP_STAGES = ['checkpoint, between listing and delete', 'checkpoint, after the re-check before the rename',
               'checkpoint, after the rename aside before rmtree', 'a dir inside a checkpoint, mid-rmtree',
               'run dir, between listing and delete', 'scratch dir, between listing and delete']


def swapping_prune(sb: Sandbox, attacker: Attacker, stage: str, target: Path, nth: int,
                   run_copy: Path | None, scratch_copy: Path | None):
    """Run the real pruning code with the attacker's swap at `stage`; the plan.
    `run_copy`/`scratch_copy`: outside copies the run/scratch dir stages link to."""
    from git_ckpt import pruning, retention, safe_delete
    from git_ckpt.errors import GitCkptError
    real_apply, real_lstat_at, real_rmtree_at = retention.apply, retention.lstat_at, safe_delete.rmtree_at
    calls = {'n': 0}

    def apply(plan, progress=None):
        if stage.startswith('checkpoint, between'):
            attacker.swap(target)
        elif run_copy is not None:
            attacker.swap(target.parent, run_copy)
        elif scratch_copy is not None:
            attacker.swap(sb.scratch, scratch_copy)
        return real_apply(plan, progress)

    def lstat_at(parent_fd, name):
        result = real_lstat_at(parent_fd, name)
        if not calls['n']:
            if stage.startswith('checkpoint, after the re-check') and name == target.name:
                calls['n'] += 1
                attacker.swap(target)
            elif stage.startswith('checkpoint, after the rename') and name.startswith(C.PRUNE_TRASH_PREFIX):
                calls['n'] += 1
                attacker.swap(target.parent / name)
        return result

    def rmtree_at(parent_fd, name):
        path = Path(os.readlink(f'/proc/self/fd/{parent_fd}')) / name
        if stage.startswith('a dir inside') and not os.path.islink(path) and path.is_dir():
            calls['n'] += 1
            if calls['n'] == nth:
                attacker.swap(path)
        return real_rmtree_at(parent_fd, name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(retention, 'apply', apply)
        mp.setattr(retention, 'lstat_at', lstat_at)
        mp.setattr(retention, 'rmtree_at', rmtree_at)
        mp.setattr(safe_delete, 'rmtree_at', rmtree_at)
        try:
            return pruning.prune_scratch_dir(sb.scratch, 1, grace=C.PRUNE_GRACE_SECONDS)
        except GitCkptError:
            return None


@pytest.mark.parametrize('stage', SWAP_STAGES)
@FEW
@given(data=st.data())
def test_checkpoint_swapped_for_a_symlink_between_listing_and_delete(sandbox, stage, data):
    sb = sandbox
    spec = data.draw(trees.specs(sb.outside, max_runs=2), label='spec')
    nth = data.draw(st.integers(1, 4), label='nth dir in rmtree')
    gone = trees.expected_prune(spec, 1)
    if not gone:
        spec.runs[next(iter(spec.runs))][1000] = []  # something to delete
        gone = trees.expected_prune(spec, 1)
    before = sb.fresh(spec)
    target = Path(os.fsdecode(os.path.join(os.fsencode(sb.scratch), data.draw(st.sampled_from(gone)))))
    attacker = Attacker(sb)
    run_copy = attacker.mirror(target.parent, 'run') if stage.startswith('run') else None
    scratch_copy = attacker.mirror(sb.scratch, 'scratch') if stage.startswith('scratch') else None
    try:
        outside = snapshot(sb.outside.base)
        plan = swapping_prune(sb, attacker, stage, target, nth, run_copy, scratch_copy)
        if not attacker.swaps:
            reject()  # the tree had fewer dirs than `nth`: no swap, no trial
        swapped = {os.fsencode(p) for p, _, _ in attacker.swaps}
        inside = attacker.lost()
        if plan is not None and stage.startswith(('checkpoint', 'run', 'scratch')):
            hit = [c for c in plan.deleted if os.fsencode(c.path) in swapped
                   or any(os.fsencode(c.path).startswith(s + b'/') for s in swapped)]
            inside += [f'reported deleted although swapped: {c.path}' for c in hit]
        # Hard links to outside inodes went only with what was deleted: count them where they are now.
        now = [sb.state(sb.scratch) if not os.path.islink(sb.scratch) else {}] + \
              [sb.state(aside) for _, aside, _ in attacker.swaps]
        trial(f'4. containment: {stage}, swapped for a symlink', 'prune swap', outside, sb,
              delta=nlink_delta([before], now), inside=inside)
    finally:
        attacker.undo()


ATTACKER = r'''
import os, sys, time
victim, stop, aside_dir, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
swaps = 0
while not os.path.exists(stop):
    for i, path in enumerate(paths):
        aside = os.path.join(aside_dir, str(i))
        try:
            os.rename(path, aside)
        except OSError:
            continue
        os.symlink(victim, path)
        swaps += 1
        time.sleep(0.0002)
        os.unlink(path)
        os.rename(aside, path)
print(swaps)
'''


@FEW
@given(data=st.data())
def test_prune_while_a_second_process_swaps_dirs_for_symlinks(sandbox, data):
    """A real concurrent attacker: a process swapping every checkpoint dir and
    run dir for a symlink to an outside dir (and back) in a loop while
    `git ckpt prune --keep 1` runs."""
    sb = sandbox
    spec = data.draw(trees.specs(sb.outside, max_runs=2), label='spec')
    before = sb.fresh(spec)
    attacker = Attacker(sb)
    base = os.fsencode(sb.scratch)
    targets = [os.path.join(base, run, f'checkpoint-{step}'.encode()) for run, steps in spec.runs.items()
               for step in steps] + [os.path.join(base, run) for run in spec.runs]
    outside = snapshot(sb.outside.base)
    stop = sb.tmp / 'stop-attacker'
    # Aside: in the root but outside the scratch dir, so a renamed kept
    # checkpoint is not seen (and fairly pruned) as some other dir's content.
    aside_dir = sb.root / '.attacker-aside'
    aside_dir.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, '-c', ATTACKER, os.fspath(attacker.victim), os.fspath(stop),
                             os.fspath(aside_dir), *targets], stdout=subprocess.PIPE)
    try:
        time.sleep(0.05)
        prune = cli('prune', '--keep', '1', cwd=sb.repo)
    finally:
        stop.touch()
        swaps = int(proc.communicate(timeout=60)[0] or 0)
        stop.unlink()
    after = sb.state(sb.scratch)
    gone = trees.expected_prune(spec, 1)
    # What prune was to keep is all there; what it was to delete is gone or whole.
    inside = differences(minus(after, gone), minus(before, gone))
    for rel in gone:
        now, then = trees.subtree(after, rel), trees.subtree(before, rel)
        if now and now != then:
            inside.append(f'{rel!r} half deleted, not reported: {said(prune)[-500:]}'
                          if prune.returncode == 0 else '')
    inside = [i for i in inside if i]
    assert swaps > 0, 'the attacker never got to swap anything'
    if b'Traceback' in prune.stderr:
        inside.append(said(prune))
    trial('4. containment: prune while another process swaps dirs for symlinks', 'prune race', outside, sb,
          delta=nlink_delta([before], [after]), inside=inside)


# --- archive, restore, remove, gc, migrate ----------------------------------------------

def ours_stripped(state: dict) -> dict:
    """A tree without git-ckpt's own manifests (rewritten by design)."""
    return {k: v for k, v in state.items() if k not in (MANIFEST, ARCHIVE_MANIFEST)}


ARCHIVE_MODES = [('same filesystem', 'dir', False), ('across filesystems', 'dir', False),
                 ('across filesystems', 'dir', True), ('across filesystems', 'tar.zst', True),
                 ('same filesystem', 'tar.zst', False)]


@pytest.mark.parametrize('where,fmt,delete_source', ARCHIVE_MODES)
@FEW
@given(data=st.data())
def test_archive_then_restore_random_trees(sandbox, shm_area, where, fmt, delete_source, data):
    sb = sandbox
    cross = where == 'across filesystems'
    spec = data.draw(trees.specs(sb.outside, max_runs=2), label='spec')
    before = ours_stripped(sb.fresh(spec))
    archive_dir = shm_area / 'archive' if cross else sb.root / 'archive'
    if archive_dir.exists():
        trees.clear(archive_dir)
    outside = snapshot(sb.outside.base)
    flags = [*(['--to', archive_dir] if cross else []), *(['--delete-source'] if delete_source else [])]
    made = cli('archive', '--format', fmt, *flags, cwd=sb.repo)
    name = f'archive --format {fmt} {where}{" --delete-source" if delete_source else ""}'
    archives = sorted(archive_dir.iterdir()) if archive_dir.is_dir() else []
    moved = delete_source or (fmt == 'dir' and not cross)
    scratch_after = ours_stripped(sb.state(sb.scratch))
    inside = exit_ok(made, 'archive') + differences(scratch_after, {b'': ('dir',)} if moved else before)
    archive_state = {}
    if len(archives) != 1:
        inside.append(f'expected one archive, found {archives}')
    elif fmt == 'dir':
        archive_state = ours_stripped(sb.state(archives[0]))
        inside += differences(archive_state, without_inodes(before) if cross else before)
    trial(f'4. containment: {name}', 'archive', outside, sb,
          delta=nlink_delta([before], [scratch_after, archive_state]),
          inside=inside)

    restored = cli('restore', '--force', archives[0], cwd=sb.repo)
    scratch_after = ours_stripped(sb.state(sb.scratch))
    renamed_back = fmt == 'dir' and not cross
    left = ours_stripped(sb.state(archives[0])) if fmt == 'dir' and archives[0].exists() else {}
    trial(f'4. containment: restore --force from {name}', 'restore', outside, sb,
          delta=nlink_delta([before], [scratch_after, left]),
          inside=exit_ok(restored, 'restore') + differences(scratch_after,
                                                            before if renamed_back else without_inodes(before)))


@pytest.mark.parametrize('how', ['remove --delete', 'remove --archive', 'gc --delete', 'gc --archive'])
@FEW
@given(data=st.data())
def test_remove_and_gc_random_trees(sandbox, how, data):
    sb = sandbox
    spec = data.draw(trees.specs(sb.outside, max_runs=2), label='spec')
    wt = sb.tmp / 'projects' / f'w{len(list((sb.tmp / "projects").iterdir()))}'
    git('worktree', 'add', '-q', wt, cwd=sb.repo)
    scratch = scratch_path(wt)
    before = ours_stripped(sb.fresh(spec, where=scratch))
    archive_dir = sb.root / 'archive'
    if archive_dir.exists():
        trees.clear(archive_dir)
    outside = snapshot(sb.outside.base)
    command, action = how.split()
    if command == 'remove':
        proc = cli('remove', action, '--yes', '--force', wt, cwd=sb.repo)
    else:
        git('worktree', 'remove', '--force', wt, cwd=sb.repo)
        proc = cli('gc', action, '--yes', cwd=sb.repo)
    inside = exit_ok(proc, how)
    if os.path.lexists(scratch):
        inside.append(f'{scratch} is still there')
    archived = {}
    if action == '--archive':
        archives = sorted(archive_dir.iterdir()) if archive_dir.is_dir() else []
        if len(archives) != 1:
            inside.append(f'expected one archive, found {archives}')
        else:
            archived = ours_stripped(sb.state(archives[0]))
            inside += differences(archived, before)
    trial(f'4. containment: {how} --yes on random trees', 'remove', outside, sb,
          delta=nlink_delta([before], [archived]), inside=inside)


@pytest.mark.parametrize('where', ['same filesystem', 'across filesystems'])
@FEW
@given(data=st.data())
def test_migrate_random_trees(sandbox, shm_area, where, data):
    sb = sandbox
    cross = where == 'across filesystems'
    spec = data.draw(trees.specs(sb.outside, max_runs=2), label='spec')
    env = dict(os.environ)
    if cross:
        env['GIT_CKPT_ROOT'] = os.fspath(shm_area / 'root')
        (shm_area / 'root').mkdir(mode=0o700, exist_ok=True)
    source = sb.repo / 'outputs'
    if source.is_symlink():
        source.unlink()
    source.mkdir()
    before = sb.fresh(spec, where=source)
    outside = snapshot(sb.outside.base)
    proc = cli('migrate', 'outputs', cwd=sb.repo, env=env)
    dest = Path(subprocess.run(['git', 'ckpt', 'path'], cwd=sb.repo, env=env, capture_output=True,
                               text=True).stdout.strip()) / 'outputs'
    moved = ours_stripped(sb.state(dest)) if dest.is_dir() else {}
    inside = exit_ok(proc, 'migrate') + differences(moved, without_inodes(before) if cross else before)
    if not (source.is_symlink() and os.path.realpath(source) == os.path.realpath(dest)):
        inside.append(f'{source} is not a link to {dest}')
    trial(f'4. containment: migrate {where}', 'migrate', outside, sb, delta=nlink_delta([before], [moved]),
          inside=inside)
    if dest.is_dir():
        trees.clear(dest)
        dest.rmdir()


# --- the scratch dir itself a symlink to an outside copy when a command starts ------------

SCRATCH_LINK_COMMANDS = [('prune', '--keep', '1'), ('prune', '--keep', '1', '--dry-run'), ('status',),
                         ('status', '--json'), ('archive',), ('archive', '--to', 'SHM'),
                         ('archive', '--to', 'SHM', '--delete-source'), ('archive', '--run', 'RUN'),
                         ('archive', '--format', 'tar.zst', '--delete-source'), ('restore', 'ARCHIVE'),
                         ('path',), ('doctor',)]


@pytest.mark.parametrize('command', SCRATCH_LINK_COMMANDS, ids=' '.join)
@settings(FEW, max_examples=max(2, EXAMPLES // 6))
@given(data=st.data())
def test_scratch_dir_replaced_by_a_symlink_to_an_outside_copy(sandbox, shm_area, command, data):
    """Someone replaced the worktree's scratch dir by a symlink to a copy of it
    outside the root (manifest included, same names, sizes and mtimes): every
    command must refuse or work on the real root only, never write or delete
    through the link."""
    sb = sandbox
    spec = data.draw(trees.specs(sb.outside, max_runs=2), label='spec')
    sb.fresh(spec)
    archive_made = None
    if command[0] == 'restore':
        archive_made = next(iter(sorted(ckpt_archive(sb, shm_area))), None)
        sb.fresh(spec)
    attacker = Attacker(sb)
    copy = sb.outside.base / 'victims' / 'scratch'
    shutil.copytree(sb.scratch, copy, symlinks=True)
    args = [os.fspath(shm_area / 'archive') if a == 'SHM' else os.fsdecode(next(iter(spec.runs))) if a == 'RUN'
            else os.fspath(archive_made) if a == 'ARCHIVE' else a for a in command]
    outside = snapshot(sb.outside.base)
    attacker.swap(sb.scratch, copy)
    try:
        proc = cli(*args, cwd=sb.repo)
        inside = attacker.lost()
        if b'Traceback' in proc.stderr or proc.returncode not in (0, 1):
            inside.append(said(proc))
        trial(f'4. containment: scratch dir a symlink to an outside copy: {" ".join(command)}', 'scratch link',
              outside, sb,
              inside=inside)
    finally:
        if os.path.isdir(sb.scratch) and not os.path.islink(sb.scratch):  # re-created by the command
            trees.clear(sb.scratch)
            os.rmdir(sb.scratch)
        attacker.undo()


def ckpt_archive(sb: Sandbox, shm_area: Path) -> list[Path]:
    """Archive the scratch dir across filesystems (source kept); the archives."""
    dest = shm_area / 'restore-from'
    if dest.exists():
        trees.clear(dest)
    proc = cli('archive', '--to', dest, cwd=sb.repo)
    assert proc.returncode == 0, said(proc)
    return list(dest.iterdir())


# --- archive and restore: swapped between their listing and their delete/move --------------

ARCHIVE_RACES = ['archive same filesystem: scratch dir swapped after the scan, before the rename',
                 'archive --run group/sub/RUN --delete-source across filesystems: group swapped before the delete',
                 'archive --format tar.zst --run group/sub/RUN --delete-source: group swapped before the delete',
                 'restore --force into group/sub/RUN: group swapped before the old entries are removed']


@pytest.mark.parametrize('stage', ARCHIVE_RACES)
@FEW
@given(data=st.data())
def test_archive_and_restore_with_a_dir_swapped_for_a_symlink(sandbox, shm_area, stage, data):
    from git_ckpt import archive, checksums, transfer
    from git_ckpt.commands.archive import archive_one, restore_command
    from git_ckpt.errors import GitCkptError
    from git_ckpt.scratch import read_manifest
    sb = sandbox
    spec = data.draw(trees.specs(sb.outside, max_runs=1), label='spec')
    nested = 'group/' in stage
    group = sb.scratch / 'group'
    trees.clear(sb.scratch, keep=(MANIFEST,))
    if nested:
        (group / 'sub').mkdir(parents=True)
    sb.fresh(spec, where=group / 'sub' if nested else sb.scratch)
    run = f'group/sub/{os.fsdecode(next(iter(spec.runs)))}' if nested else None
    dest_root = shm_area / 'archive' if 'across' in stage or 'tar.zst' in stage or 'restore' in stage \
        else sb.root / 'archive'
    if dest_root.exists():
        trees.clear(dest_root)
    dest_root.mkdir(mode=0o700, exist_ok=True)
    manifest = read_manifest(sb.scratch)
    src = sb.scratch / run if run else sb.scratch
    made = None
    if stage.startswith('restore'):
        made = archive_one(src, sb.scratch, manifest, run=run, dest_root=dest_root, fmt='dir',
                           delete_source=False, dry_run=False).dest
    attacker = Attacker(sb)
    swap_what = group if nested else sb.scratch
    copy = attacker.mirror(swap_what, 'copy')   # an exact copy: same names, sizes, mtimes
    before = {'scratch': sb.state(sb.scratch)}
    outside = snapshot(sb.outside.base)
    real_scan, real_remove_tree = transfer.scan, checksums.remove_tree
    real_archive_remove_tree = archive.remove_tree

    def scan(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        if stage.startswith('archive same') and not attacker.swaps:
            attacker.swap(swap_what, copy)
        return result

    def remove_tree(*args, **kwargs):
        if not attacker.swaps:
            attacker.swap(swap_what, copy)
        return (real_archive_remove_tree if stage.startswith('restore') else real_remove_tree)(*args, **kwargs)

    error = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transfer, 'scan', scan)
        mp.setattr(checksums, 'remove_tree', remove_tree)
        mp.setattr(archive, 'remove_tree', remove_tree)
        try:
            if stage.startswith('restore'):
                mp.chdir(sb.repo)
                restore_command(archive_arg=os.fspath(made), worktree_arg=None, force=True, cli_root=None)
            else:
                fmt = 'tar.zst' if 'tar.zst' in stage else 'dir'
                archive_one(src, sb.scratch, manifest, run=run, dest_root=dest_root, fmt=fmt,
                            delete_source='--delete-source' in stage, dry_run=False)
        except (GitCkptError, OSError) as exc:
            error = exc
    try:
        inside = attacker.lost()
        if not attacker.swaps:
            inside.append(f'the attacker never swapped (error: {error})')
        trial(f'4. containment: {stage}', 'move swap', outside, sb, inside=inside,
              delta=nlink_delta([before['scratch']], [sb.state(a) for _, a, _ in attacker.swaps]
                                + [sb.state(sb.scratch) if not os.path.islink(sb.scratch) else {}]
                                + [ours_stripped(sb.state(p)) for p in sb.root.joinpath('archive').glob('*')]))
    finally:
        if os.path.islink(sb.scratch) or not sb.scratch.exists():
            pass
        attacker.undo()
        if not (sb.scratch / C.MANIFEST_NAME).exists():
            ckpt('path', cwd=sb.repo)


# --- restore of a tampered archive ------------------------------------------------------

def _outside_rel(sb: Sandbox, path: Path, style: str, target: Path) -> str:
    """A manifest/member name for an outside file: absolute, or relative to the
    restore target through `..`."""
    if style == 'absolute':
        return os.fsdecode(os.fsencode(path))
    return os.path.relpath(path, target)


def tamper_dir_archive(archive: Path, sb: Sandbox, victim: Path, style: str) -> None:
    """List an outside file in the archive's manifest, with its real checksum
    (so verification that reads through the name passes)."""
    import hashlib
    import json
    manifest_path = archive / C.TRANSFER_MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    data = victim.read_bytes()
    rel = _outside_rel(sb, victim, style, archive)
    manifest['files'][rel] = {'size': len(data), 'sha256': hashlib.sha256(data).hexdigest(), 'mode': 0o777,
                              'mtime_ns': 0}
    manifest_path.write_text(json.dumps(manifest))


def tamper_tar_archive(archive: Path, sb: Sandbox, victim: Path, style: str) -> None:
    """Rewrite a .tar.zst with a hard-link member to an outside file, listed in
    the manifest with mode 0777 and mtime 0 (what restore's finishing pass sets)."""
    import hashlib
    import io
    import json
    import tarfile

    import zstandard
    with open(archive, 'rb') as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zin, \
            tarfile.open(fileobj=zin, mode='r|') as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar]
    link = _outside_rel(sb, victim, style, sb.scratch / f'.git-ckpt-restore-{archive.name}')
    data = victim.read_bytes()
    record = {'size': len(data), 'sha256': hashlib.sha256(data).hexdigest(), 'mode': 0o777, 'mtime_ns': 0}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for member, body in members:
            if member.name == C.TRANSFER_MANIFEST_NAME:
                manifest = json.loads(body)
                manifest['files']['planted'] = dict(record, link_to=link)
                manifest['files'][link] = record
                body = json.dumps(manifest).encode()
                member.size = len(body)
                extra = tarfile.TarInfo('planted')
                extra.type, extra.linkname = tarfile.LNKTYPE, link
                tar.addfile(extra)
            tar.addfile(member, io.BytesIO(body) if body is not None else None)
    archive.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(out.getvalue()))


@pytest.mark.parametrize('fmt,when', [('dir', 'before restore'), ('tar.zst', 'before restore'),
                                      ('tar.zst', 'after its verification')])
@FEW
@given(data=st.data())
def test_restore_of_a_tampered_archive(sandbox, shm_area, fmt, when, data):
    """Someone with write access to the archive dir lists outside files in an
    archive (absolute, or through `..`; for tar.zst as a hard-link member too)
    with their true checksums, before restore or between its verification
    and its unpacking: restore must refuse, touch nothing outside the root
    and leave the scratch dir as it was."""
    from git_ckpt import archive as archive_mod
    from git_ckpt.commands.archive import restore_command
    from git_ckpt.errors import GitCkptError
    sb = sandbox
    spec = data.draw(trees.specs(sb.outside, max_runs=1), label='spec')
    style = data.draw(st.sampled_from(['absolute', 'dotdot']), label='style')
    victim = data.draw(st.sampled_from(sb.outside.files), label='victim')
    before = sb.fresh(spec)
    dest = shm_area / 'tampered'
    if dest.exists():
        trees.clear(dest)
    made = cli('archive', '--to', dest, '--format', fmt, cwd=sb.repo)
    assert made.returncode == 0, said(made)
    archive = next(dest.iterdir())
    tamper = tamper_dir_archive if fmt == 'dir' else tamper_tar_archive
    outside = snapshot(sb.outside.base)
    if when == 'before restore':
        tamper(archive, sb, victim, style)
        proc = cli('restore', '--force', archive, cwd=sb.repo)
        refused = proc.returncode == 1 and b'Traceback' not in proc.stderr
        how = said(proc)[-1500:]
    else:
        real_check = archive_mod.check_archive

        def check_then_tamper(path):
            manifest = real_check(path)
            tamper(archive, sb, victim, style)
            return manifest
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(sb.repo)
            mp.setattr(archive_mod, 'check_archive', check_then_tamper)
            try:
                restore_command(archive_arg=os.fspath(archive), worktree_arg=None, force=True, cli_root=None)
                refused, how = False, 'restored'
            except GitCkptError as exc:
                refused, how = True, str(exc)
    inside = differences(sb.state(sb.scratch) if sb.scratch.is_dir() else {}, before)
    if not refused:
        inside.append(f'restore of a tampered archive was not refused: {how}')
    trial(f'4. containment: restore --force of a {fmt} archive tampered {when} ({style} names of outside files)',
          'tampered',
          outside, sb, inside=inside)


@FEW
@given(data=st.data())
def test_migrate_with_a_dir_on_the_way_swapped_for_a_symlink(sandbox, shm_area, data):
    """`git ckpt migrate group/sub/out` across filesystems, with `group`
    swapped for a symlink to an exact outside copy after the verified copy,
    before the source is deleted (the real migrate code, in-process)."""
    from git_ckpt import checksums
    from git_ckpt.commands.migrate import migrate_command
    from git_ckpt.errors import GitCkptError
    sb = sandbox
    spec = data.draw(trees.specs(sb.outside, max_runs=1), label='spec')
    group = sb.repo / 'group'
    if group.is_dir():
        trees.clear(group)
        group.rmdir()
    source = group / 'sub' / 'out'
    source.mkdir(parents=True)
    sb.fresh(spec, where=source)
    attacker = Attacker(sb)
    copy = attacker.mirror(group, 'copy')
    root = shm_area / f'root-{len(list(shm_area.iterdir()))}'
    root.mkdir(mode=0o700)
    outside = snapshot(sb.outside.base)
    real_remove_tree = checksums.remove_tree

    def remove_tree(*args, **kwargs):
        if not attacker.swaps:
            attacker.swap(group, copy)
        return real_remove_tree(*args, **kwargs)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(sb.repo)
        mp.setenv('GIT_CKPT_ROOT', os.fspath(root))
        mp.setattr(checksums, 'remove_tree', remove_tree)
        try:
            migrate_command(('group/sub/out',), hf_cache=False, dry_run=False, yes=True)
        except GitCkptError:
            pass
    try:
        inside = attacker.lost()
        if not attacker.swaps:
            inside.append('the attacker never swapped')
        trial('4. containment: migrate across filesystems: a dir on the way swapped before the source delete',
              'move swap', outside, sb, inside=inside)
    finally:
        attacker.undo()
        git('config', '--unset-all', 'ckpt.link', cwd=sb.repo, check=False)
