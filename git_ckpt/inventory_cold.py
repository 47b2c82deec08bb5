"""The cold inventory: uncached checkpoints measured by `find`, before the scan.

A scratch dir without a size cache (first status, cache deleted) has every
file to lstat.  `measure` lists the dirs above the checkpoints (getdents
only, no stat per entry), hands the checkpoint dirs to find_walk (find
processes, one per free core), reads the checkpoints' trainer_state.json
files meanwhile, and returns {checkpoint path: Measured}.  inventory.scan
then walks as always and takes a checkpoint's measurement from there instead
of walking it, if its top dir is still the one find measured (inode, mtime,
ctime); anything find did not measure cleanly is walked in Python as before.

Only cold scratch dirs are measured this way: a warm scan re-validates its
cache with one lstat per directory, and find would stat every file.  Below
MIN_CHECKPOINTS starting find costs more than walking in Python.
Standard library only.
"""
from __future__ import annotations

import os
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import find_walk, workers
from git_ckpt.disk_usage import DIR_FLAGS, Tree, is_network_fs
from git_ckpt.inventory_cache import SizeCache
from git_ckpt.inventory_names import parse_checkpoint_name, read_trainer_state

MIN_CHECKPOINTS = 64   # fewer uncached checkpoints than this: the Python walk is cheaper than a find
NETWORK_PROCESSES = 4  # on Lustre/GPFS a walk waits on round trips: more finds at once


class Measured:
    """find's Tree of a checkpoint, and read_trainer_state's answer if read already."""
    __slots__ = ('tree', 'state')

    def __init__(self, tree: Tree, state: tuple[dict | None, str | None] | None = None) -> None:
        self.tree = tree
        self.state = state


def checkpoint_dirs(scratch_dir: str) -> list[tuple[str, str, bool]]:
    """(parent dir, name, HF?) of every checkpoint dir the scan will measure:
    `checkpoint-<n>` and `tmp-checkpoint-*` dirs anywhere, numeric dirs in a
    `checkpoints` dir.  d_type only, symlinks never entered, checkpoints
    never entered; what cannot be read is left to the scan to report."""
    found: list[tuple[str, str, bool]] = []
    stack = [scratch_dir]
    while stack:
        path = stack.pop()
        try:
            fd = os.open(path, DIR_FLAGS)
        except OSError:
            continue
        try:
            with os.scandir(fd) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        except OSError:
            entries = []
        finally:
            os.close(fd)
        art = os.path.basename(path) == C.ART_CHECKPOINTS_DIR
        for entry, is_dir in entries:
            if not is_dir:
                continue
            try:
                parsed = parse_checkpoint_name(entry)
            except ValueError:
                parsed = None
            if parsed is not None:
                found.append((path, entry, True))
            elif art and entry.isascii() and entry.isdigit():
                found.append((path, entry, False))
            else:
                stack.append(f'{path}/{entry}')
    return found


def measure(caches: list[tuple[Path, SizeCache | None]], processes: int | None = None) -> dict[str, Measured]:
    """Measurements of the checkpoints of every cold scratch dir (nothing in
    its cache; None: no cache at all), by path text; {} when there are fewer
    than MIN_CHECKPOINTS of them.  `processes`: finds at once (None: one per
    free core)."""
    pending = [ckpt for found in cold_checkpoints(caches).values() for ckpt in found]
    if len(pending) < MIN_CHECKPOINTS:
        return {}
    return measure_checkpoints(pending, processes)


def cold_checkpoints(caches: list[tuple[Path, SizeCache | None]]) -> dict[Path, list[tuple[str, str, bool]]]:
    """checkpoint_dirs of every cold scratch dir in `caches`."""
    return {scratch_dir: checkpoint_dirs(os.fspath(scratch_dir))
            for scratch_dir, cache in caches if cache is None or cache.is_cold()}


def measure_checkpoints(pending: list[tuple[str, str, bool]], processes: int | None = None) -> dict[str, Measured]:
    """find_walk's measurements of `pending` (checkpoint_dirs' tuples), with
    their trainer states read while find walks."""
    if not pending:
        return {}
    if processes is None:
        processes = workers.worker_count(len(pending), MIN_CHECKPOINTS)
    if is_network_fs(pending[0][0]):
        processes = max(processes, NETWORK_PROCESSES)
    finish = find_walk.start([f'{parent}/{name}' for parent, name, _ in pending], processes)
    states = _read_states(pending)  # while find walks
    return {path: Measured(tree, states.get(path)) for path, tree in finish().items()}


def _read_states(pending: list[tuple[str, str, bool]]) -> dict[str, tuple[dict | None, str | None]]:
    """read_trainer_state of every HF checkpoint in `pending`, by path."""
    states = {}
    fd, fd_path = None, None
    try:
        for parent, name, hf in pending:
            if not hf:
                continue
            if parent != fd_path:
                if fd is not None:
                    os.close(fd)
                fd, fd_path = None, parent
                try:
                    fd = os.open(parent, DIR_FLAGS)
                except OSError:
                    continue
            if fd is not None:
                states[f'{parent}/{name}'] = read_trainer_state(fd, name)
    finally:
        if fd is not None:
            os.close(fd)
    return states
