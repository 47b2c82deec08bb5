"""Scenario 1 of issue 8: kill -9 at random points of a cross-filesystem
`archive`, `migrate`, `restore` and `prune`, then a rerun.

Every trial kills a real `git ckpt ...` process (its whole process group),
in one of two ways, alternating:
- after a random delay (seeded; the window is calibrated from a full run, so
  kills land from the first write to the last delete), or
- at the N-th filesystem-changing operation (N seeded, 1..the count of a full
  run), by an audit hook in tests/faults/killpoint/sitecustomize.py that sends
  the process SIGKILL just before that operation: deterministic phase points
  (before a file's copy, between verify and rename, mid-delete ...).
After each kill: every source byte is still somewhere safe (sha256 of every
file of the original tree, in the source or in a copy that verifies), nothing
that does not verify looks complete (a dir under its final name, an archive
restore would accept), and the same command rerun exits 0 with the full,
correct result.  The seed is printed (and in every failure message);
GIT_CKPT_CRASH_SEED=N reproduces a run.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ckpt, git, scratch_path, set_age, tree_digest
from faults.figures import record_trial

from git_ckpt import archive, transfer
from git_ckpt.errors import GitCkptError
from git_ckpt.safe_delete import remove_tree

KILLPOINT = Path(__file__).resolve().parent / 'killpoint'
TRIALS = int(os.environ.get('GIT_CKPT_CRASH_TRIALS', '20'))
TODAY = time.strftime('%Y-%m-%d')
MIB = 1 << 20


@pytest.fixture
def seed():
    value = int(os.environ.get('GIT_CKPT_CRASH_SEED') or random.SystemRandom().randrange(1 << 32))
    print(f'GIT_CKPT_CRASH_SEED={value}')
    return value


# --- killing -----------------------------------------------------------------

def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([os.fspath(KILLPOINT), *filter(None, [env.get('PYTHONPATH')])])
    env['PYTHONDONTWRITEBYTECODE'] = '1'  # .pyc writes would shift the operation count
    env.update(extra)
    return env


def _group_alive(pgid: int) -> bool:
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and (fields[0] != 'Z' or _threads_alive(pid)):
            return True
    return False


def _threads_alive(pid: str) -> bool:
    """Has the process a thread not yet dead?  A killed multi-threaded
    process's leader shows 'Z' while its other threads still exit, and the
    last of them closes the files: its flock is held until then (seen once,
    on a loaded machine, as a rerun refused with "in use by git ckpt restore")."""
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except OSError:
        return False
    for tid in tids:
        try:
            with open(f'/proc/{pid}/task/{tid}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] not in ('Z', 'X'):
                    return True
        except OSError:
            continue
    return False


def _reap(proc: subprocess.Popen) -> None:
    proc.wait()
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not _group_alive(proc.pid), 'the killed process group did not go away'


def calibrate(cmd: list[str], cwd: Path, tmp: Path) -> tuple[int, float, float]:
    """Run `cmd` to the end once: (operations counted, seconds from start to the
    first, to the last)."""
    count_file = tmp / f'count-{time.monotonic_ns()}'
    start = time.time()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(GIT_CKPT_TEST_COUNT_FILE=os.fspath(count_file)),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    n, first, last = count_file.read_text().split()
    count_file.unlink()
    return int(n), float(first) - start, float(last) - start


def kill_after(cmd: list[str], cwd: Path, delay: float) -> str:
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
        return f'finished before the kill at {delay:.3f}s (exit {proc.returncode})'
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)   # git and git-ckpt, like kill -9 of the job
        _reap(proc)
        return f'killed after {delay:.3f}s'


def kill_at(cmd: list[str], cwd: Path, n: int) -> str:
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(GIT_CKPT_TEST_KILL_AT=str(n)), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _reap(proc)
    return f'killed before operation #{n}'


def files_of(digest: dict[str, str]) -> dict[str, str]:
    return {rel: v for rel, v in digest.items() if v != 'dir' and not v.startswith('link:')}


def accepted_by_restore(path: Path) -> bool:
    """Would `git ckpt restore` take this as a complete archive?"""
    try:
        archive.check_archive(path)
        return True
    except GitCkptError:
        return False


def run_trials(name: str, scenario, seed: int, tmp: Path) -> None:
    """Calibrate on a full run, then TRIALS kills + reruns, each recorded and asserted."""
    rng = random.Random(seed)
    scenario.prepare()
    n_ops, first, last = calibrate(scenario.cmd, scenario.cwd, tmp)
    assert n_ops > 0
    problems = scenario.check_complete()
    assert not problems, f'the uninterrupted run is wrong: {problems}'
    seen: Counter = Counter()
    for trial in range(TRIALS):
        scenario.prepare()
        if trial % 2:
            how = kill_at(scenario.cmd, scenario.cwd, rng.randint(1, n_ops))
        else:
            how = kill_after(scenario.cmd, scenario.cwd, rng.uniform(max(first - 0.05, 0.0), last + 0.02))
        phase, problems, lost = scenario.check_after_kill()
        seen[phase] += 1
        if getattr(scenario, 'consumed', None) and scenario.consumed():
            problems += scenario.check_complete()   # done, and the command consumed its input
            record_trial(name, failed=bool(problems), bytes_lost=lost)
            assert not problems and lost == 0, (
                f'GIT_CKPT_CRASH_SEED={seed} trial {trial}: {how}, state {phase!r}: {lost} bytes lost; {problems}')
            continue
        rerun = subprocess.run(scenario.cmd, cwd=scenario.cwd, capture_output=True, text=True)
        if rerun.returncode != 0 or 'Traceback' in rerun.stderr:
            problems.append(f'the rerun failed (exit {rerun.returncode}): {rerun.stderr.strip()}')
        else:
            problems += scenario.check_complete()
        record_trial(name, failed=bool(problems), bytes_lost=lost)
        assert not problems and lost == 0, (
            f'GIT_CKPT_CRASH_SEED={seed} trial {trial}: {how}, state {phase!r}: '
            f'{lost} source bytes lost; {problems}')
    print(f'{name}: {TRIALS} trials, {n_ops} operations, window {first:.2f}-{last:.2f}s; '
          f'states after the kill: {dict(seen)}')


# --- data ----------------------------------------------------------------------

def write_tree(where: Path, blobs: dict[str, bytes], links: dict[str, str] = {}) -> None:
    for rel, data in blobs.items():
        (where / rel).parent.mkdir(parents=True, exist_ok=True)
        (where / rel).write_bytes(data)
    for rel, target in links.items():
        os.symlink(target, where / rel)


def checkpoint_blobs(rng: random.Random, steps, *, run='run1', model=3 * MIB, optimizer=MIB,
                     extra_files: int = 0, best: int | None = None) -> dict[str, bytes]:
    blobs = {}
    for step in steps:
        base = f'{run}/checkpoint-{step}'
        blobs[f'{base}/model.safetensors'] = rng.randbytes(model)
        blobs[f'{base}/optimizer.pt'] = rng.randbytes(optimizer)
        for i in range(extra_files):
            blobs[f'{base}/rng_state_{i}.pth'] = rng.randbytes(4096)
        state = {'global_step': step, 'best_model_checkpoint': f'out/checkpoint-{best}' if best else None}
        blobs[f'{base}/trainer_state.json'] = json.dumps(state).encode()
    return blobs


def clear_dir(path: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete what is in `path` (links as links), except the names in `keep`."""
    for entry in os.scandir(path):
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            os.unlink(entry.path)


def lost_bytes(original: dict[str, str], sizes: dict[str, int], *safe: dict[str, str]) -> tuple[int, list[str]]:
    """Bytes of the original files found with their checksum in none of `safe`."""
    missing = [rel for rel, sha in files_of(original).items() if not any(s.get(rel) == sha for s in safe)]
    return sum(sizes[rel] for rel in missing), missing


# --- 1. archive across filesystems ---------------------------------------------

class ArchiveScenario:
    """`git ckpt archive --to <tmpfs> --delete-source` of a worktree's scratch dir on another filesystem."""

    def __init__(self, wt: Path, scratch: Path, dest_root: Path, rng: random.Random) -> None:
        self.cwd, self.scratch, self.dest_root = wt, scratch, dest_root
        self.cmd = ['git', 'ckpt', 'archive', '--to', os.fspath(dest_root), '--delete-source']
        self.manifest = (scratch / '.git-ckpt.json').read_bytes()
        self.blobs = checkpoint_blobs(rng, (10, 20, 30))
        self.blobs['logs/events.txt'] = rng.randbytes(20000)
        self.links = {'latest': 'run1/checkpoint-30'}
        self.dest = dest_root / f'{wt.name}-{TODAY}'

    def prepare(self) -> None:
        clear_dir(self.dest_root)
        clear_dir(self.scratch)
        (self.scratch / '.git-ckpt.json').write_bytes(self.manifest)
        write_tree(self.scratch, self.blobs, self.links)
        self.original = tree_digest(self.scratch)
        self.sizes = {rel: len(data) for rel, data in self.blobs.items()}
        self.sizes['.git-ckpt.json'] = len(self.manifest)

    def _archives(self) -> list[Path]:
        return sorted(self.dest_root.iterdir())

    def check_after_kill(self) -> tuple[str, list[str], int]:
        problems, safe = [], [tree_digest(self.scratch) if self.scratch.is_dir() else {}]
        for path in self._archives():
            if accepted_by_restore(path):
                got = tree_digest(path)
                got.pop(transfer.MANIFEST, None)
                if got != self.original:
                    problems.append(f'{path.name} verifies but differs from the source')
                safe.append(got)
            elif not path.name.endswith(transfer.PARTIAL):
                problems.append(f'{path.name} is under a final name but does not verify')
        lost, missing = lost_bytes(self.original, self.sizes, *safe)
        if missing:
            problems.append(f'lost: {missing[:5]}')
        names = [p.name for p in self._archives()]
        left = len(files_of(safe[0]))
        phase = ('archive done' if self.dest.name in names else
                 'partial copy' if any(n.endswith(transfer.PARTIAL) for n in names) else 'nothing written')
        if left < len(files_of(self.original)):
            phase += f', source {left}/{len(files_of(self.original))} files'
        return phase, problems, lost

    def check_complete(self) -> list[str]:
        problems = []
        names = sorted(p.name for p in self._archives())
        if names != [self.dest.name]:
            problems.append(f'the archive dir holds {names}, expected only {self.dest.name}')
        if not self.dest.is_dir() or transfer.verify(self.dest):
            return problems + [f'{self.dest.name} missing or does not verify']
        got = tree_digest(self.dest)
        got.pop(transfer.MANIFEST, None)
        if got != self.original:
            problems.append('the archive differs from the source')
        leftover = set(os.listdir(self.scratch)) - {'.git-ckpt.json'} if self.scratch.is_dir() else {'<gone>'}
        if leftover:
            problems.append(f'--delete-source left {sorted(leftover)} in the scratch dir')
        return problems


def test_kill_9_during_archive_across_filesystems(inited_repo, shm_dir, seed, tmp_path):
    git('worktree', 'add', '-q', '../exp1', cwd=inited_repo)
    wt = inited_repo.parent / 'exp1'
    scratch = scratch_path(wt)
    assert os.stat(scratch).st_dev != os.stat(shm_dir).st_dev
    (shm_dir / 'archive').mkdir()
    scenario = ArchiveScenario(wt, scratch, shm_dir / 'archive', random.Random(seed))
    run_trials('1. kill -9: archive across filesystems', scenario, seed, tmp_path)


# --- 1. migrate ------------------------------------------------------------------

class MigrateScenario:
    """`git ckpt migrate outputs`: from the worktree (/tmp) to a scratch root on /dev/shm."""

    def __init__(self, repo: Path, rng: random.Random) -> None:
        self.cwd = repo
        self.cmd = ['git', 'ckpt', 'migrate', 'outputs']
        self.src = repo / 'outputs'
        self.blobs = checkpoint_blobs(rng, (10, 20, 30), run='.')
        self.blobs['log.txt'] = rng.randbytes(5000)
        self.links = {'latest': 'checkpoint-30'}
        self.sizes = {rel.removeprefix('./'): len(d) for rel, d in self.blobs.items()}
        self.dest = scratch_path(repo) / 'outputs'

    def prepare(self) -> None:
        if self.src.is_symlink():
            self.src.unlink()
        for path in (self.src, self.dest, self.dest.with_name('outputs.partial')):
            if path.is_dir():
                remove_tree(path)
        self.src.mkdir()
        write_tree(self.src, self.blobs, self.links)
        self.original = tree_digest(self.src)

    def check_after_kill(self) -> tuple[str, list[str], int]:
        problems = []
        source = tree_digest(self.src) if self.src.is_dir() and not self.src.is_symlink() else {}
        dest = {}
        if os.path.lexists(self.dest):
            # Under its final name a copy must be complete and, while it has a manifest, verify.
            dest = tree_digest(self.dest)
            had_manifest = dest.pop(transfer.MANIFEST, None) is not None
            if dest != self.original or (had_manifest and transfer.verify(self.dest)):
                problems.append('scratch/outputs exists under its final name but is not a complete copy')
        lost, missing = lost_bytes(self.original, self.sizes, source, dest)
        if missing:
            problems.append(f'lost: {missing[:5]}')
        partial = self.dest.with_name('outputs.partial').exists()
        phase = ('linked' if self.src.is_symlink() else
                 f'copied, source {len(files_of(source))}/{len(files_of(self.original))} files' if dest else
                 'partial copy' if partial else 'nothing written')
        return phase, problems, lost

    def check_complete(self) -> list[str]:
        problems = []
        if not (self.src.is_symlink() and Path(os.readlink(self.src)) == self.dest):
            problems.append('outputs is not the link to its scratch copy')
        if not self.dest.is_dir() or tree_digest(self.dest) != self.original:
            problems.append('the scratch copy is missing or differs from the original')
        if self.dest.with_name('outputs.partial').exists():
            problems.append('outputs.partial was left behind')
        return problems


def test_kill_9_during_migrate(inited_repo, shm_dir, seed, tmp_path, monkeypatch):
    root = shm_dir / 'root'
    root.mkdir(mode=0o700)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    assert os.stat(inited_repo).st_dev != os.stat(root).st_dev
    scenario = MigrateScenario(inited_repo, random.Random(seed))
    run_trials('1. kill -9: migrate', scenario, seed, tmp_path)


# --- 1. restore ------------------------------------------------------------------

class RestoreScenario:
    """`git ckpt restore <archive on /dev/shm>` into a worktree's scratch dir on /tmp."""

    def __init__(self, wt: Path, scratch: Path, archive_path: Path, original: dict, sizes: dict) -> None:
        self.cwd, self.scratch, self.archive = wt, scratch, archive_path
        self.cmd = ['git', 'ckpt', 'restore', os.fspath(archive_path)]
        self.original, self.sizes = original, sizes
        self.archived = tree_digest(archive_path)

    def prepare(self) -> None:
        clear_dir(self.scratch, keep=('.git-ckpt.json',))

    def _restored(self) -> dict[str, str]:
        got = tree_digest(self.scratch)
        got.pop('.git-ckpt.json')
        return got

    def check_after_kill(self) -> tuple[str, list[str], int]:
        problems = []
        now = tree_digest(self.archive)
        if now != self.archived or not accepted_by_restore(self.archive):
            problems.append('the archive changed or no longer verifies')
        lost, missing = lost_bytes(self.original, self.sizes, now)
        if missing:
            problems.append(f'lost from the archive: {missing[:5]}')
        got = self._restored()
        names = sorted({rel.split('/', 1)[0] for rel in got})
        for name in names:
            if name.startswith('.git-ckpt-restore-'):
                continue  # the restore's own staging area, never shown as data
            part = {rel: v for rel, v in got.items() if rel == name or rel.startswith(f'{name}/')}
            want = {rel: v for rel, v in self.original.items() if rel == name or rel.startswith(f'{name}/')}
            if part != want:
                problems.append(f'{name} is in the scratch dir but incomplete')
        shown = ','.join(n for n in names if not n.startswith('.'))
        phase = f'restored: {shown or "none"}' if names else 'nothing yet'
        if any(n.startswith('.git-ckpt-restore-') for n in names):
            phase += ' + staging'
        return phase, problems, lost

    def check_complete(self) -> list[str]:
        problems = []
        if self._restored() != self.original:
            extra = sorted(set(self._restored()) - set(self.original))[:3]
            problems.append(f'the scratch dir does not hold exactly the archive (extra: {extra})')
        if tree_digest(self.archive) != self.archived:
            problems.append('the archive changed')
        return problems


def test_kill_9_during_restore(inited_repo, shm_dir, seed, tmp_path):
    git('worktree', 'add', '-q', '../exp1', cwd=inited_repo)
    wt = inited_repo.parent / 'exp1'
    scratch = scratch_path(wt)
    rng = random.Random(seed)
    blobs = checkpoint_blobs(rng, (10, 20, 30))
    blobs.update({f'run2/checkpoint-{s}/model.safetensors': rng.randbytes(MIB) for s in (5, 6)})
    write_tree(scratch, blobs, {'latest': 'run1/checkpoint-30'})
    original = tree_digest(scratch)
    original.pop('.git-ckpt.json')
    ckpt('archive', '--to', shm_dir, '--delete-source', cwd=wt)
    archive_path = shm_dir / f'exp1-{TODAY}'
    assert accepted_by_restore(archive_path)
    scenario = RestoreScenario(wt, scratch, archive_path, original, {k: len(v) for k, v in blobs.items()})
    run_trials('1. kill -9: restore', scenario, seed, tmp_path)


class SameFilesystemRestoreScenario(RestoreScenario):
    """`git ckpt restore <name>` of an archive in <root>/archive: one filesystem, so
    the archive itself is moved into a staging dir, then its entries into place."""

    def __init__(self, wt, scratch, archive_path, template, original, sizes) -> None:
        self.template = template
        super().__init__(wt, scratch, archive_path, original, sizes)
        self.cmd = ['git', 'ckpt', 'restore', archive_path.name]

    def prepare(self) -> None:
        super().prepare()
        if self.archive.exists():
            remove_tree(self.archive)
        shutil.copytree(self.template, self.archive, symlinks=True)
        os.utime(self.archive / transfer.MANIFEST)

    def check_after_kill(self) -> tuple[str, list[str], int]:
        problems, safe = [], []
        if self.archive.exists():
            if not accepted_by_restore(self.archive):
                problems.append('the archive is under its name but does not verify')
            safe.append(tree_digest(self.archive))
        got = self._restored()
        staged = [n for n in {rel.split('/', 1)[0] for rel in got} if n.startswith('.git-ckpt-restore-')]
        for name in staged:   # the archive moved here: its files count where they are
            safe.append({rel.split('/', 1)[1]: v for rel, v in got.items() if rel.startswith(f'{name}/')})
        safe.append(got)
        for name in {rel.split('/', 1)[0] for rel in got} - set(staged):
            part = {rel: v for rel, v in got.items() if rel == name or rel.startswith(f'{name}/')}
            if part != {rel: v for rel, v in self.original.items() if rel == name or rel.startswith(f'{name}/')}:
                problems.append(f'{name} is in the scratch dir but incomplete')
        lost, missing = lost_bytes(self.original, self.sizes, *safe)
        if missing:
            problems.append(f'lost: {missing[:5]}')
        phase = ('archive in place' if self.archive.exists() else 'archive moved') + \
            (' + staging' if staged else '') + f', {len(set(got) & set(self.original))} entries in place'
        return phase, problems, lost

    def consumed(self) -> bool:
        """Finished before or as it was killed: the archive was moved back, so
        rerunning `restore <name>` has nothing to find (and must not pretend)."""
        return not self.archive.exists() and self._restored() == self.original

    def check_complete(self) -> list[str]:
        problems = []
        if self._restored() != self.original:
            problems.append('the scratch dir does not hold exactly the archive')
        if self.archive.exists():
            problems.append('the archive was not moved back')
        return problems


def test_kill_9_during_restore_on_one_filesystem(inited_repo, hermetic, seed, tmp_path):
    git('worktree', 'add', '-q', '../exp1', cwd=inited_repo)
    wt = inited_repo.parent / 'exp1'
    scratch = scratch_path(wt)
    rng = random.Random(seed)
    blobs = checkpoint_blobs(rng, (10, 20, 30), model=2 * MIB)
    write_tree(scratch, blobs, {'latest': 'run1/checkpoint-30'})
    original = tree_digest(scratch)
    original.pop('.git-ckpt.json')
    ckpt('archive', '--delete-source', cwd=wt)   # a rename into <root>/archive
    archive_path = hermetic.root / 'archive' / f'exp1-{TODAY}'
    template = tmp_path / 'template'
    shutil.copytree(archive_path, template, symlinks=True)
    scenario = SameFilesystemRestoreScenario(wt, scratch, archive_path, template, original,
                                             {k: len(v) for k, v in blobs.items()})
    run_trials('1. kill -9: restore (same filesystem)', scenario, seed, tmp_path)


# --- 1. prune --------------------------------------------------------------------

class PruneScenario:
    """`git ckpt prune --keep 2` of 8 old checkpoints (best: checkpoint-3)."""

    KEPT = ('checkpoint-3', 'checkpoint-7', 'checkpoint-8')

    def __init__(self, repo: Path, rng: random.Random) -> None:
        self.cwd = repo
        self.cmd = ['git', 'ckpt', 'prune', '--keep', '2']
        self.scratch = scratch_path(repo)
        self.run = self.scratch / 'out'
        self.blobs = checkpoint_blobs(rng, range(1, 9), run='out', model=MIB // 2, optimizer=MIB // 4,
                                      extra_files=40, best=3)
        self.sizes = {rel: len(d) for rel, d in self.blobs.items()}

    def prepare(self) -> None:
        if self.run.exists():
            remove_tree(self.run)
        write_tree(self.scratch, self.blobs)
        set_age(self.run, 3600)
        self.original = tree_digest(self.scratch)
        self.original.pop('.git-ckpt.json')
        self.kept = {rel: v for rel, v in self.original.items()
                     if rel.split('/')[1:2] and rel.split('/')[1] in self.KEPT}

    def _checkpoints(self) -> dict[str, dict[str, str]]:
        now = tree_digest(self.run)
        out: dict[str, dict[str, str]] = {}
        for rel, v in now.items():
            out.setdefault(rel.split('/', 1)[0], {})[rel] = v
        return out

    def check_after_kill(self) -> tuple[str, list[str], int]:
        problems = []
        present = self._checkpoints()
        now = {f'out/{rel}': v for part in present.values() for rel, v in part.items()}
        lost, missing = lost_bytes(self.kept, self.sizes, now)
        if missing:
            problems.append(f'lost from kept checkpoints: {missing[:5]}')
        for name, part in present.items():
            if not name.startswith('checkpoint-'):
                continue
            want = {rel[len('out/'):]: v for rel, v in self.original.items()
                    if rel == f'out/{name}' or rel.startswith(f'out/{name}/')}
            if part != want:
                problems.append(f'{name} looks like a checkpoint but is partly deleted')
        gone = 8 - sum(1 for n in present if n.startswith('checkpoint-'))
        trash = sum(1 for n in present if not n.startswith('checkpoint-'))
        return f'{gone}/5 deleted{", a trash dir" if trash else ""}', problems, lost

    def check_complete(self) -> list[str]:
        present = self._checkpoints()
        problems = []
        if sorted(present) != sorted(self.KEPT):
            problems.append(f'the run holds {sorted(present)}, expected {sorted(self.KEPT)}')
        now = {f'out/{rel}': v for part in present.values() for rel, v in part.items()}
        if {rel: v for rel, v in now.items() if rel.split('/')[1] in self.KEPT} != self.kept:
            problems.append('a kept checkpoint changed')
        return problems


def test_kill_9_during_prune(inited_repo, seed, tmp_path):
    scenario = PruneScenario(inited_repo, random.Random(seed))
    run_trials('1. kill -9: prune', scenario, seed, tmp_path)
