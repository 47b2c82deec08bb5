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
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from faults import trees
from faults.figures import record_trial
from faults.trees import Outside, changed, minus, snapshot, tree_state, without_inodes
from git_ckpt import constants as C

EXAMPLES = int(os.environ.get('GIT_CKPT_CONTAIN_EXAMPLES', '20'))
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
    return subprocess.run(['git', 'ckpt', *(a if isinstance(a, (str, bytes)) else os.fspath(a) if isinstance(a, Path) else str(a) for a in args)], cwd=cwd, capture_output=True,
                          env=env)


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


def trial(scenario: str, outside_before: dict, sb: Sandbox, *, delta: dict[int, int] | None = None,
          inside: list[str] = ()) -> None:
    """Record one trial, then assert on it: nothing outside the root touched,
    and `inside` (what differs from the expected tree, or a bad exit) empty."""
    touched = changed(outside_before, snapshot(sb.outside.base), delta)
    record_trial(scenario, failed=bool(touched or inside), outside_touched=len(touched))
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
    trial('4. containment: status on random trees', outside, sb,
          inside=exit_ok(status, 'status') + exit_ok(as_json, 'status --json')
          + differences(sb.state(sb.scratch), before))

    dry = cli('prune', '--keep', keep, '--dry-run', cwd=sb.repo)
    trial('4. containment: prune --dry-run on random trees', outside, sb,
          inside=exit_ok(dry, 'prune --dry-run') + differences(sb.state(sb.scratch), before))

    real = cli('prune', '--keep', keep, cwd=sb.repo)
    expected = minus(before, trees.expected_prune(spec, keep))
    trial('4. containment: prune on random trees', outside, sb, delta=nlink_delta([before], [expected]),
          inside=exit_ok(real, 'prune') + differences(sb.state(sb.scratch), expected))
