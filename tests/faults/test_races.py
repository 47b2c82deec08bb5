"""Issue 8, scenario 3: races.

Part 1: `git ckpt prune --keep 1` run in a loop, as real subprocesses, while a
real transformers Trainer (tiny GPT-2 from a config, CPU, `git_ckpt.setup()`)
saves and evaluates at every step.  Both sides write down what they saw, with
timestamps from the same clock:

* the Trainer (tests/faults/race_trainer.py): when each save starts and which
  checkpoint it considers best then, when it begins writing trainer_state.json
  (the file that makes a checkpoint complete), and after each save which
  checkpoints exist;
* the prune loop: the start and end of every prune and what it deleted.

A deletion of checkpoint-K by a prune that ran in [start, end] is a violation
if, by `end`, the Trainer had not even begun writing K's trainer_state.json
(K was in progress), if no higher checkpoint had (K was the newest), or if K
was still the Trainer's best at `end`.  These are one-sided on purpose: a
Trainer descheduled between writing and logging can only make a deletion
look safer, never a safe one look like a violation.  On the Trainer side the
newest and the best must exist at every save; the run must finish, load its
best model at the end, and a second run must resume from the newest
checkpoint and finish too.

Part 2: two of `prune` / `archive` / `gc` started together on the same
scratch dirs (a barrier: both wait until a file appears).  They must be
serialized by the lock (the loser exits 1 with the one-line "in use by"
message of git_ckpt/lock.py, or runs after the winner), exit cleanly, delete
nothing twice, and leave exactly the tree that running them one after the
other would leave.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ckpt, git, make_repo, run, scratch_path
from faults.figures import record_trial

HERE = Path(__file__).resolve().parent
RACE_TRAINER = HERE / 'race_trainer.py'
needs_transformers = pytest.mark.skipif(
    not all(__import__('importlib.util').util.find_spec(m) for m in ('torch', 'transformers')),
    reason="needs torch and transformers: pip install torch==2.13.0 '.[transformers]'")


# --- part 1: a prune loop against a training Trainer --------------------------------------------

class PruneLoop:
    """`git ckpt prune --keep 1 --grace 0` again and again in `cwd` until stopped.

    --grace 0: the grace window is a second safety net (anything written in the
    last 5 minutes is kept); with it nothing of a short run would ever be
    deleted.  The race is against the policy itself.
    """

    def __init__(self, cwd: Path, seed: int) -> None:
        self.cwd = cwd
        self.rng = random.Random(seed)
        self.runs: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> 'PruneLoop':
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=120)

    def _loop(self) -> None:
        while not self.stop.is_set():
            start = time.time()
            proc = subprocess.run(['git', 'ckpt', 'prune', '--keep', '1', '--grace', '0'], cwd=self.cwd,
                                  capture_output=True, text=True)
            end = time.time()
            self.runs.append({'start': start, 'end': end, 'rc': proc.returncode, 'stdout': proc.stdout,
                              'stderr': proc.stderr, 'deleted': _names(proc.stdout, 'deleted '),
                              'incomplete': [line for line in proc.stdout.splitlines()
                                             if line.startswith('keep') and ('incomplete' in line or 'corrupt' in line)]})
            time.sleep(self.rng.uniform(0.05, 0.3))  # a user's loop, not a fork bomb


def _names(stdout: str, prefix: str) -> list[str]:
    """checkpoint names from prune's `deleted out/checkpoint-5 (1.2M)` lines."""
    return [line[len(prefix):].split(' ')[0].rsplit('/', 1)[-1]
            for line in stdout.splitlines() if line.startswith(prefix)]


def _step(name: str) -> int:
    return int(name.rsplit('-', 1)[1])


def train(repo: Path, log: Path, *, max_steps: int, seed: int, resume: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    return run([sys.executable, RACE_TRAINER, str(max_steps), str(seed), 'resume' if resume else 'new', log],
               cwd=repo, env=env, check=False)


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def prune_violations(prunes: list[dict], evs: list[dict]) -> list[str]:
    """What the prune side saw deleted that it must not have (see the module docstring)."""
    state_begun = {}   # step -> when the Trainer began writing its trainer_state.json
    best_changes = []  # (time, best step) from every save start
    for ev in evs:
        if ev['event'] == 'state_write':
            state_begun.setdefault(ev['step'], ev['t'])
        elif ev['event'] == 'save_start' and ev['best_step']:
            best_changes.append((ev['t'], ev['best_step']))
    out = []
    for p in prunes:
        for name in p['deleted']:
            k = _step(name)
            begun = [s for s, t in state_begun.items() if t < p['end']]
            if k not in begun:
                out.append(f'{name} deleted by the prune of {p["start"]:.3f}-{p["end"]:.3f} while in progress')
            if not begun or k >= max(begun):
                out.append(f'{name} deleted by the prune of {p["start"]:.3f}-{p["end"]:.3f} while the newest')
            best = [b for t, b in best_changes if t < p['end']]
            if best and best[-1] == k:
                out.append(f'{name} deleted by the prune of {p["start"]:.3f}-{p["end"]:.3f} while the best')
    return out


def trainer_violations(evs: list[dict]) -> list[str]:
    """After every save, the Trainer's newest and best checkpoints must be there and complete."""
    out = []
    for ev in evs:
        if ev['event'] != 'on_save':
            continue
        present = ev['checkpoints']  # name -> has trainer_state.json
        for role, name in (('newest', f'checkpoint-{ev["step"]}'), ('best', ev['best'])):
            if name is not None and not present.get(name):
                out.append(f'after the save of step {ev["step"]}: the {role} {name} is '
                           f'{"incomplete" if name in present else "gone"}')
    return out


def final_violations(out_dir: Path, summary: dict) -> list[str]:
    problems = []
    for role in ('newest', 'best'):
        name = summary[role]
        checked = summary['loaded'].get(name)
        if checked != 'ok':
            problems.append(f'the {role} {name} does not load: {checked}')
        state = out_dir / name / 'trainer_state.json'
        if not state.is_file() or json.loads(state.read_text())['global_step'] != _step(name):
            problems.append(f'the {role} {name} has no valid trainer_state.json')
    return problems


@needs_transformers
@pytest.mark.slow
@pytest.mark.parametrize('seed', [1, 2, 3])
def test_prune_loop_vs_a_training_trainer(hermetic, seed):
    repo = make_repo(hermetic.tmp / 'proj')
    ckpt('init', cwd=repo)
    log = hermetic.tmp / 'events.jsonl'
    first_steps, second_steps = 10, 15
    violations, summaries, prunes = [], [], []
    for phase, (max_steps, resume) in enumerate(((first_steps, False), (second_steps, True))):
        with PruneLoop(repo, seed * 10 + phase) as loop:
            proc = train(repo, log, max_steps=max_steps, seed=seed, resume=resume)
        prunes += loop.runs
        if proc.returncode != 0 or 'Traceback' in proc.stderr:
            violations.append(f'training run {phase + 1} failed (exit {proc.returncode}): {proc.stderr[-2000:]}')
            break
        summaries.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        # Right after the run: its newest and best are complete (the next run makes them old).
        violations += final_violations(scratch_path(repo) / 'out', summaries[-1])
    evs = events(log)
    out_dir = scratch_path(repo) / 'out'
    violations += [f'prune exited {p["rc"]}: {p["stderr"]}' for p in prunes
                   if p['rc'] != 0 or 'Traceback' in p['stderr']]
    violations += prune_violations(prunes, evs) + trainer_violations(evs)
    if len(summaries) == 2:
        first, second = summaries
        if first['global_step'] != first_steps or second['global_step'] != second_steps:
            violations.append(f'runs stopped early: {first["global_step"]}, {second["global_step"]}')
        if second['start_step'] != first_steps:
            violations.append(f'the second run resumed from step {second["start_step"]}, not {first_steps}')
        # Once the Trainer is done, one more prune leaves exactly the newest and the best.
        ckpt('prune', '--keep', '1', '--grace', '0', cwd=repo)
        left = sorted(os.listdir(out_dir))
        expected = sorted({second['newest'], second['best']})
        if left != expected:
            violations.append(f'a final prune left {left}, expected {expected}')
    deleted = sum(len(p['deleted']) for p in prunes)
    saw_in_progress = sum(bool(p['incomplete']) for p in prunes)
    record_trial('3. prune loop vs a training Trainer', failed=bool(violations))
    assert not violations, '\n'.join(violations)
    # The trial proves something only if the two sides really overlapped.
    assert len(prunes) >= 10, f'only {len(prunes)} prunes ran during training'
    assert deleted >= 5, f'the prune loop deleted only {deleted} checkpoints'
    assert saw_in_progress >= 1, 'no prune ever ran while a checkpoint was being written'
    assert summaries[0]['best'] != summaries[0]['newest'], 'the best was the newest: keep-best not exercised'
    saw_empty_state = sum('corrupt' in line for p in prunes for line in p['incomplete'])
    print(f'seed {seed}: {len(prunes)} prunes, {deleted} deleted, {saw_in_progress} saw a save in progress '
          f'({saw_empty_state} an empty trainer_state.json)')


# --- part 2: two lifecycle commands on the same scratch dirs at once ----------------------------

TRIALS = 10
BUSY = 'is in use by'   # git_ckpt/lock.py: the loser's one line, exit 1


class Lifecycle:
    """A repository after `git ckpt init` whose main worktree has two runs of old
    checkpoints (the best of `out` is checkpoint-2), and two orphaned scratch
    dirs (their worktrees were removed) with checkpoints too.  The whole
    project dir is saved once and put back before every trial."""

    def __init__(self, hermetic) -> None:
        from conftest import add_worktree, make_checkpoint
        self.root = hermetic.root
        self.repo = make_repo(hermetic.tmp / 'proj')
        ckpt('init', cwd=self.repo)
        self.scratch = scratch_path(self.repo)
        self.project = self.scratch.parent
        out = self.scratch / 'out'
        for step in range(1, 61):
            make_checkpoint(out, f'checkpoint-{step}', age=7200 - step,
                            files={'model.safetensors': os.urandom(9000), 'sub/optimizer.pt': os.urandom(3000),
                                   'sub/scheduler.pt': b's', 'rng_state.pth': b'r'},
                            state={'global_step': step, 'best_model_checkpoint': os.fspath(out / 'checkpoint-2')})
        for step in range(1, 6):
            make_checkpoint(self.scratch / 'runs' / 'b', f'checkpoint-{step * 10}', age=7200 - step)
        self.orphans = []
        for name in ('exp1', 'exp2'):
            wt = add_worktree(self.repo, hermetic.tmp / name)
            orphan = scratch_path(wt)
            for step in range(1, 31):
                make_checkpoint(orphan / 'out', f'checkpoint-{step}', age=7200 - step,
                                files={'model.safetensors': os.urandom(5000), 'sub/optimizer.pt': b'o',
                                       'sub/scheduler.pt': b's', 'rng_state.pth': b'r'})
            git('worktree', 'remove', wt, cwd=self.repo)
            self.orphans.append(orphan)
        self.template = hermetic.tmp / 'template'
        import shutil
        shutil.copytree(self.project, self.template, symlinks=True)
        self.barriers = hermetic.tmp / 'barriers'
        self.barriers.mkdir()
        self.count = 0

    def reset(self) -> None:
        import shutil
        shutil.rmtree(self.project)
        shutil.rmtree(self.root / 'archive', ignore_errors=True)
        shutil.copytree(self.template, self.project, symlinks=True)

    def together(self, *commands: list[str]) -> list[subprocess.CompletedProcess]:
        """Start every command at once: each spins (shell builtins only) until
        the go file appears, created once all of them are ready."""
        self.count += 1
        go = self.barriers / f'go-{self.count}'
        ready = [self.barriers / f'ready-{self.count}-{i}' for i in range(len(commands))]
        script = ': > "$0"; while [ ! -e "$1" ]; do :; done; shift; exec git ckpt "$@"'
        procs = [subprocess.Popen(['sh', '-c', script, r, go, *cmd], cwd=self.repo, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for r, cmd in zip(ready, commands)]
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            time.sleep(0.001)
        go.touch()
        results = []
        for proc, cmd in zip(procs, commands):
            stdout, stderr = proc.communicate(timeout=300)
            results.append(subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr))
        return results

    def one_after_another(self, *commands: list[str]) -> dict:
        self.reset()
        for cmd in commands:
            ckpt(*cmd, cwd=self.repo)
        return self.snapshot()

    def snapshot(self) -> dict:
        """Everything under the root but git-ckpt's own state (locks, caches):
        file checksums, with manifests (they hold timestamps) checked for
        presence only; the archive dir itself (a loser may have created it
        empty) only through what is in it.  Every archive must verify against
        its manifest."""
        from conftest import tree_digest
        from git_ckpt import archive
        from git_ckpt import constants as C
        archives = self.root / 'archive'
        if archives.is_dir():
            for path in archives.iterdir():
                archive.check_archive(path)  # raises naming the bad files
        return {rel: ('manifest' if os.path.basename(rel) in (C.MANIFEST_NAME, C.TRANSFER_MANIFEST_NAME)
                      else digest)
                for rel, digest in tree_digest(self.root).items()
                if not rel.startswith(C.STATE_DIR) and rel != C.ARCHIVE_AREA}  # (its content counts)


@pytest.fixture
def lifecycle(hermetic):
    return Lifecycle(hermetic)


def outcome(proc: subprocess.CompletedProcess) -> tuple[str, list[str]]:
    """('ran' | 'busy', problems): exit 0, or exit 1 with only lock-busy lines."""
    problems = []
    if 'Traceback' in proc.stdout + proc.stderr:
        problems.append(f'{proc.args}: a traceback:\n{proc.stderr}')
    errors = [line for line in proc.stderr.splitlines() if line.startswith('git-ckpt: error:')]
    others = [line for line in proc.stderr.splitlines() if 'warning' in line or
              (line.startswith('git-ckpt: error:') and BUSY not in line)]
    if others:
        problems.append(f'{proc.args} exited {proc.returncode}: {others}')
    if proc.returncode == 0:
        return 'ran', problems
    if proc.returncode == 1 and errors and all(BUSY in line for line in errors):
        return 'busy', problems
    problems.append(f'{proc.args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}')
    return 'failed', problems


def deleted_twice(results: list[subprocess.CompletedProcess], prefix: str) -> list[str]:
    seen, twice = set(), []
    for proc in results:
        for line in proc.stdout.splitlines():
            if line.startswith(prefix):
                what = line[len(prefix):].split(' ')[0]
                if what in seen:
                    twice.append(what)
                seen.add(what)
    return twice


def tree_difference(final: dict, allowed: dict) -> str:
    """What sets `final` apart from the closest allowed tree (for the failure message)."""
    def distance(ref):
        return len(set(final.items()) ^ set(ref.items()))
    order, ref = min(allowed.items(), key=lambda item: distance(item[1]))
    extra = sorted(k for k in final if final[k] != ref.get(k))
    missing = sorted(k for k in ref if k not in final)
    return f'closest is {order}; differing or extra: {extra[:8]}; missing: {missing[:8]}'


# On the main worktree's scratch dir (one lock: the loser does nothing at all).
PAIRS = {
    '3. two prunes at once': (['prune', '--keep', '1'], ['prune', '--keep', '1']),
    '3. prune + archive at once': (['prune', '--keep', '1'], ['archive']),
    '3. two archives at once': (['archive'], ['archive']),
    '3. prune + archive --run at once': (['prune', '--keep', '1'], ['archive', '--run', 'out']),
}
# On the two orphaned scratch dirs (one lock each: a loser may skip one and do the other).
ORPHAN_PAIRS = {
    '3. gc + gc at once': (['gc', '--delete'], ['gc', '--delete']),
    '3. gc --archive + gc --archive at once': (['gc', '--archive'], ['gc', '--archive']),
    '3. gc --delete + gc --archive at once': (['gc', '--delete'], ['gc', '--archive']),
    '3. archive --orphans + gc at once': (['archive', '--orphans'], ['gc', '--delete']),
}


def partition(tree: dict, orphans: list[Path], root: Path) -> dict[str, dict]:
    """The tree split by what each lock guards: every orphan (its scratch dir and
    its archive) apart, the rest together."""
    parts: dict[str, dict] = {}
    prefixes = [(os.fspath(o.relative_to(root)), f'archive/{o.name.rsplit("-", 1)[0]}-') for o in orphans]
    for rel, digest in tree.items():
        owner = next((i for i, (here, there) in enumerate(prefixes)
                      if rel == here or rel.startswith((here + '/', there))), 'rest')
        parts.setdefault(str(owner), {})[rel] = digest
    return parts


def run_pair(lifecycle, scenario: str, a: list[str], b: list[str], *, one_lock: bool) -> None:
    """TRIALS races of `a` and `b` (more, up to 3 x TRIALS, until the two have
    met at the lock at least once: on a loaded machine they can miss each
    other); each trial recorded and asserted on.

    Serialized by the lock means: every part of the final tree guarded by one
    lock is what `a` alone, `b` alone, or both one after the other leave there
    (with `one_lock`, a loser that says "in use by" must have changed nothing),
    nothing was deleted twice, and both exited 0 or with the lock's message."""
    allowed = {('a',): lifecycle.one_after_another(a), ('b',): lifecycle.one_after_another(b),
               ('a', 'b'): lifecycle.one_after_another(a, b), ('b', 'a'): lifecycle.one_after_another(b, a)}
    parts = {order: partition(tree, lifecycle.orphans, lifecycle.root) for order, tree in allowed.items()}
    busy_seen = trial = 0
    while trial < TRIALS or (not busy_seen and trial < 3 * TRIALS):
        trial += 1
        lifecycle.reset()
        results = lifecycle.together(a, b)
        problems, kinds = [], []
        for proc in results:
            kind, found = outcome(proc)
            kinds.append(kind)
            problems += found
        # An orphan archived twice is a double move; the live dir is made again
        # after an archive, so archiving it twice is what two runs in a row do.
        twice = deleted_twice(results, 'deleted ') + ([] if one_lock else deleted_twice(results, 'archived '))
        if twice:
            problems.append(f'deleted or archived twice: {twice}')
        final = lifecycle.snapshot()
        if one_lock and kinds == ['ran', 'busy']:
            fits = final == allowed[('a',)]
        elif one_lock and kinds == ['busy', 'ran']:
            fits = final == allowed[('b',)]
        else:
            mine = partition(final, lifecycle.orphans, lifecycle.root)
            names = set(mine) | {name for p in parts.values() for name in p}
            fits = all(any(mine.get(name, {}) == p.get(name, {}) for p in parts.values()) for name in names)
        if not fits:
            problems.append(f'trial {trial} ({kinds}): the final tree is not what running them one after '
                            f'the other leaves: {tree_difference(final, allowed)}\n'
                            + '\n'.join(f'{p.args}: {p.stdout}{p.stderr}' for p in results))
        busy_seen += 'busy' in kinds or any(BUSY in p.stderr for p in results)
        record_trial(scenario, failed=bool(problems))
        assert not problems, '\n'.join(problems)
    print(f'{scenario}: the lock turned one away in {busy_seen} of {trial} trials')
    assert busy_seen >= 1, f'the two never met at the lock in {trial} trials: nothing was proved about it'


@pytest.mark.slow
@pytest.mark.parametrize('scenario', list(PAIRS))
def test_two_commands_on_one_scratch_dir(lifecycle, scenario):
    run_pair(lifecycle, scenario, *PAIRS[scenario], one_lock=True)


@pytest.mark.slow
@pytest.mark.parametrize('scenario', list(ORPHAN_PAIRS))
def test_two_commands_on_the_orphans(lifecycle, scenario):
    run_pair(lifecycle, scenario, *ORPHAN_PAIRS[scenario], one_lock=False)
