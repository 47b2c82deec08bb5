"""Scenario 2 of issue 8: a full disk, as the destination and as the scratch root.

Real tmpfs mounts (tmpfs_mount) sized so that the space runs out before,
or in the middle of, an `archive`, a `migrate`, a `restore`, a `prune`, and
a real transformers Trainer save under `git_ckpt.setup()` (tiny GPT-2 built
from a config, nothing downloaded).  Every trial checks: a clear error (one
line for the CLI, naming the space problem and the fix; a GitCkptError for
the Trainer), the source intact (sha256 of every file), and no output that
looks complete (an archive restore would accept, a copy under its final name,
a checkpoint with trainer_state.json) unless it is.  Then space is made
(remount bigger) and the same command must complete.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ckpt, git, run, scratch_path, set_age, tree_digest
from faults.figures import record_trial

from git_ckpt import archive, transfer
from git_ckpt.errors import GitCkptError
from git_ckpt.safe_delete import remove_tree

TODAY = time.strftime('%Y-%m-%d')
MIB = 1 << 20
EXAMPLE = Path(__file__).resolve().parents[2] / 'examples' / 'train_tiny.py'


def one_line_problems(proc: subprocess.CompletedProcess, *needles: str) -> list[str]:
    """What is wrong with `proc` as a clear CLI error (empty: it is one)."""
    lines = proc.stderr.strip().splitlines()
    problems = []
    if proc.returncode != 1:
        problems.append(f'exit {proc.returncode}, expected 1')
    if 'Traceback' in proc.stderr + proc.stdout:
        problems.append('a traceback')
    if len(lines) != 1 or not lines[0].startswith('git-ckpt: error: '):
        problems.append(f'not one error line: {proc.stderr.strip()[:300]!r}')
    problems += [f'{n!r} not in the error' for n in needles if n not in proc.stderr]
    return problems


def looks_complete(path: Path) -> bool:
    try:
        archive.check_archive(path)
        return True
    except GitCkptError:
        return False


def remount(where: Path, size: str, inodes: str = '') -> None:
    run(['mount', '-o', f'remount,size={size}' + (f',nr_inodes={inodes}' if inodes else ''), where])


def fill_to(where: Path, free: int) -> Path:
    """A filler file leaving about `free` bytes free on `where`'s filesystem."""
    st = os.statvfs(where)
    filler = where / 'filler'
    with open(filler, 'wb') as f:
        f.write(b'\0' * max(st.f_bavail * st.f_frsize - free, 0))
    return filler


def bytes_lost(before: dict, after: dict) -> int:
    return sum(1 for rel, v in before.items() if after.get(rel) != v)


# Source trees the destination cannot hold, each running out of space at another point.
SHAPES = {
    'one file bigger than the disk': (dict(files=1, size=6 * MIB), ''),       # refused before writing
    'small files, blocks run out': (dict(files=1100, size=3000), ''),         # ENOSPC mid-copy
    'inodes run out': (dict(files=120, size=100), '60'),                      # ENOSPC creating a file
    'a few files of MiBs': (dict(files=5, size=MIB + 12345), ''),             # refused or mid-copy
}


def make_tree(where: Path, rng: random.Random, files: int, size: int) -> None:
    for i in range(files):
        path = where / 'run1' / f'checkpoint-{i % 3}' / f'shard-{i:04}.bin'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    (where / 'run1' / 'checkpoint-0' / 'trainer_state.json').write_text('{"global_step": 0}')


@pytest.mark.parametrize('fmt', ['dir', 'tar.zst'])
@pytest.mark.parametrize('shape', list(SHAPES))
def test_archive_to_a_full_destination(inited_repo, tmpfs_mount, shape, fmt):
    spec, inodes = SHAPES[shape]
    if fmt == 'tar.zst' and spec['files'] * spec['size'] < 4 * MIB:
        pytest.skip('one packed file: only bytes run out (blocks and inodes of many files do not)')
    git('worktree', 'add', '-q', '../exp1', cwd=inited_repo)
    wt = inited_repo.parent / 'exp1'
    scratch = scratch_path(wt)
    make_tree(scratch, random.Random(shape), **spec)
    before = tree_digest(scratch)
    dest = tmpfs_mount('dest', size='4m', options=f'nr_inodes={inodes}' if inodes else '')
    args = ['archive', '--to', dest, '--delete-source', '--format', fmt]
    proc = ckpt(*args, cwd=wt, check=False)
    problems = one_line_problems(proc, 'space', 'the source is intact')
    after = tree_digest(scratch)
    lost = bytes_lost(before, after)
    if after != before:
        problems.append('the source changed')
    for entry in dest.iterdir():
        if looks_complete(entry):
            problems.append(f'{entry.name} looks like a complete archive')
        elif not entry.name.endswith(transfer.PARTIAL):
            problems.append(f'{entry.name} is left under a final name')
    # Make room: the same command completes.
    remount(dest, '64m', '10000' if inodes else '')
    rerun = ckpt(*args, cwd=wt, check=False)
    final = dest / f'exp1-{TODAY}{".tar.zst" if fmt == "tar.zst" else ""}'
    if rerun.returncode != 0 or not looks_complete(final):
        problems.append(f'the rerun with room failed: {rerun.stderr.strip()}')
    elif sorted(os.listdir(scratch)) != ['.git-ckpt.json']:
        problems.append('the rerun did not delete the source')
    record_trial('2. full disk: archive', failed=bool(problems), bytes_lost=lost)
    assert not problems and lost == 0, (proc.stderr, problems)


@pytest.mark.parametrize('shape', list(SHAPES))
def test_migrate_into_a_full_root(inited_repo, tmpfs_mount, monkeypatch, shape):
    spec, inodes = SHAPES[shape]
    root = tmpfs_mount('root', size='4m', options=f'nr_inodes={inodes}' if inodes else '')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    src = inited_repo / 'outputs'
    make_tree(src, random.Random(shape), **spec)
    before = tree_digest(src)
    proc = ckpt('migrate', 'outputs', cwd=inited_repo, check=False)
    problems = one_line_problems(proc, 'space', 'the source is intact')
    after = tree_digest(src) if src.is_dir() and not src.is_symlink() else {}
    lost = bytes_lost(before, after)
    if after != before:
        problems.append('the source changed or became a link')
    dest = scratch_path(inited_repo) / 'outputs'
    if os.path.lexists(dest):
        problems.append('scratch/outputs exists under its final name')
    partial = dest.with_name('outputs.partial')
    if partial.exists() and looks_complete(partial):
        problems.append('outputs.partial looks complete')
    remount(root, '64m', '10000' if inodes else '')
    rerun = ckpt('migrate', 'outputs', cwd=inited_repo, check=False)
    if rerun.returncode != 0 or not src.is_symlink() or tree_digest(dest) != before:
        problems.append(f'the rerun with room failed: {rerun.stderr.strip()}')
    record_trial('2. full disk: migrate', failed=bool(problems), bytes_lost=lost)
    assert not problems and lost == 0, (proc.stderr, problems)


def test_restore_into_a_full_root(inited_repo, tmpfs_mount, shm_dir, monkeypatch):
    """The scratch root fills while restoring an archive from another filesystem."""
    root = tmpfs_mount('root', size='64m')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    scratch = Path(ckpt('path', cwd=inited_repo).stdout.strip())
    make_tree(scratch, random.Random(3), files=5, size=MIB + 12345)   # ~5 MiB: too big for 4m once archived
    before = tree_digest(scratch)
    ckpt('archive', '--to', shm_dir, '--delete-source', cwd=inited_repo)
    path = shm_dir / f'proj-{TODAY}'
    archived = tree_digest(path)
    remount(root, '4m')
    proc = ckpt('restore', path, cwd=inited_repo, check=False)
    problems = one_line_problems(proc, 'space')
    lost = bytes_lost(archived, tree_digest(path))
    if lost or not looks_complete(path):
        problems.append('the archive changed')
    restored = tree_digest(scratch)
    for name in {rel.split('/', 1)[0] for rel in restored} - {'.git-ckpt.json'}:
        part = {r: v for r, v in restored.items() if r == name or r.startswith(f'{name}/')}
        if not name.startswith('.git-ckpt-restore-') and part != {r: v for r, v in before.items()
                                                                   if r == name or r.startswith(f'{name}/')}:
            problems.append(f'{name} is in the scratch dir but incomplete')
    remount(root, '64m')
    rerun = ckpt('restore', path, cwd=inited_repo, check=False)
    if rerun.returncode != 0 or tree_digest(scratch) != before:
        problems.append(f'the rerun with room failed: {rerun.stderr.strip()}')
    record_trial('2. full disk: restore (root full)', failed=bool(problems), bytes_lost=lost)
    assert not problems and lost == 0, (proc.stderr, problems)


def test_the_fixes_work_on_a_full_root(inited_repo, tmpfs_mount, shm_dir, monkeypatch):
    """A root at 100%: status, prune and archive --delete-source --to elsewhere
    (what the full-disk errors tell the user to run) still work and free space;
    a command that must write there says so in one line."""
    root = tmpfs_mount('root', size='4m')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    scratch = Path(ckpt('path', cwd=inited_repo).stdout.strip())
    rng = random.Random(1)
    for step in (1, 2, 3):
        ck = scratch / 'out' / f'checkpoint-{step}'
        ck.mkdir(parents=True)
        (ck / 'model.safetensors').write_bytes(rng.randbytes(600_000))
        (ck / 'trainer_state.json').write_text(json.dumps({'global_step': step}))
        set_age(ck, 3600)
    fill_to(root, 0)
    assert os.statvfs(root).f_bavail == 0
    kept = tree_digest(scratch / 'out' / 'checkpoint-3')
    git('worktree', 'add', '-q', '../exp2', cwd=inited_repo)   # its hook cannot make a scratch dir
    trials = []
    status = ckpt('status', cwd=inited_repo, check=False)
    trials.append(('status', [] if status.returncode == 0 else [status.stderr.strip()]))
    new_dir = ckpt('path', cwd=inited_repo.parent / 'exp2', check=False)
    trials.append(('path of a new worktree', one_line_problems(new_dir, 'no space left on the filesystem',
                                                               'git ckpt prune')))
    prune = ckpt('prune', '--keep', '1', cwd=inited_repo, check=False)
    pruned = sorted(os.listdir(scratch / 'out'))
    trials.append(('prune', [] if prune.returncode == 0 and pruned == ['checkpoint-3']
                   and tree_digest(scratch / 'out' / 'checkpoint-3') == kept
                   else [f'prune: exit {prune.returncode} {prune.stderr.strip()} {pruned}']))
    fill_to(root, 0)
    arch = ckpt('archive', '--to', shm_dir, '--delete-source', cwd=inited_repo, check=False)
    trials.append(('archive away', [] if arch.returncode == 0 and looks_complete(shm_dir / f'proj-{TODAY}')
                   else [f'archive: exit {arch.returncode} {arch.stderr.strip()}']))
    for what, problems in trials:
        record_trial('2. full disk: status, prune, archive (root full)', failed=bool(problems))
    assert not [t for t in trials if t[1]], trials


# --- a real Trainer save under setup() -----------------------------------------------

HAVE_TRANSFORMERS = all(__import__('importlib').util.find_spec(m) for m in ('torch', 'transformers'))


def complete_checkpoints(run_dir: Path) -> tuple[list[str], list[str]]:
    """(complete, broken) checkpoint-N dirs: complete = trainer_state.json parses
    and every safetensors/pt file is whole (safetensors header + sizes, zip end)."""
    complete, broken = [], []
    for ck in sorted(p for p in run_dir.iterdir() if p.name.startswith('checkpoint-')):
        ok = False
        try:
            json.loads((ck / 'trainer_state.json').read_text())
            blob = (ck / 'model.safetensors').read_bytes()
            header = int.from_bytes(blob[:8], 'little')
            ends = [v['data_offsets'][1] for k, v in json.loads(blob[8:8 + header]).items() if k != '__metadata__']
            ok = 8 + header + max(ends) == len(blob)
            ok = ok and all(f.read_bytes()[-22:-18] == b'PK\x05\x06' for f in ck.glob('*.pt*'))
        except (OSError, ValueError, KeyError):
            ok = False
        (complete if ok else broken).append(ck.name)
    return complete, broken


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason='needs torch and transformers')
@pytest.mark.parametrize('free_kib', [40, 150, 260])
def test_trainer_save_on_a_full_root(inited_repo, tmpfs_mount, monkeypatch, free_kib):
    """The root fills during a Trainer save (checkpoints are ~116 KiB: the
    space runs out in the 1st, 2nd or 3rd save, at different files)."""
    for name, value in (('HF_HUB_OFFLINE', '1'), ('TRANSFORMERS_OFFLINE', '1'), ('OMP_NUM_THREADS', '1')):
        monkeypatch.setenv(name, value)
    root = tmpfs_mount('root', size='2m')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    run_dir = scratch_path(inited_repo) / 'out'
    fill_to(root, free_kib * 1024)
    train = [sys.executable, EXAMPLE, '--max-steps', '6', '--save-steps', '2']
    proc = run(train, cwd=inited_repo, check=False)
    problems = []
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''
    if proc.returncode == 0:
        problems.append('training finished although the disk was full')
    elif not (last.startswith('git_ckpt.errors.GitCkptError: no space left on the filesystem of')
              and 'resume_from_checkpoint=True' in last and 'git ckpt prune' in last):
        problems.append(f'unclear error: {last[:300]}')
    complete, broken = complete_checkpoints(run_dir) if run_dir.is_dir() else ([], [])
    if broken:
        problems.append(f'partial checkpoints that look like checkpoints: {broken}')
    (root / 'filler').unlink()   # make room, resume: it continues from the last complete save
    proc = run([*train, '--resume'] if complete else train, cwd=inited_repo, check=False)
    summary = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    want_start = max((int(c.split('-')[1]) for c in complete), default=0)
    if summary is None or summary['global_step'] != 6 or summary['start_step'] != want_start:
        problems.append(f'the resume failed or did not start from the last complete save: '
                        f'{summary or proc.stderr.strip()[-300:]}')
    record_trial('2. full disk: Trainer save under setup()', failed=bool(problems))
    assert not problems, problems


@pytest.mark.skipif(not HAVE_TRANSFORMERS, reason='needs torch and transformers')
def test_setup_on_a_full_root_is_a_clear_error(inited_repo, tmpfs_mount, monkeypatch):
    root = tmpfs_mount('root', size='1m')
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    git('worktree', 'add', '-q', '../exp1', cwd=inited_repo)
    remove_tree(scratch_path(inited_repo.parent / 'exp1'))   # no scratch dir: setup() must make it
    fill_to(root, 0)
    proc = run([sys.executable, '-c', 'import git_ckpt; git_ckpt.setup()'], cwd=inited_repo.parent / 'exp1',
               check=False)
    last = proc.stderr.strip().splitlines()[-1]
    problems = [] if (proc.returncode == 1 and last.startswith(
        'git_ckpt.errors.GitCkptError: no space left on the filesystem of') and 'git ckpt prune' in last) \
        else [f'unclear: {proc.stderr[-400:]}']
    record_trial('2. full disk: setup() (root full)', failed=bool(problems))
    assert not problems, problems
