"""Scanning many scratch dirs at once, in forked worker processes (`scan_many`).

A cold scan on a local disk is CPU-bound (one lstat per file plus CPython's
own work), so `status` deals its scratch dirs out to worker processes (see
workers.forked_map for why processes and not threads).  Each worker scans
whole scratch dirs, so each cache file is written by one process only, and
sends the inventories back pickled.  When enough checkpoints are cold, each
process has those of its share walked by one `find` (inventory_cold) while it
reads their trainer states.  Standard library only.
"""
from __future__ import annotations

import gc
import os
import pickle
from pathlib import Path, PosixPath

from git_ckpt import inventory, inventory_cold, workers
from git_ckpt.inventory_cache import SizeCache


class _PathPickler(pickle.Pickler):
    """Pickles a Path as (its parent, once per dir; its name): unpickling one
    then costs a child_path, not pathlib parsing every component again, which
    was most of the time spent unpickling an inventory."""

    def __init__(self, file, protocol: int | None = None) -> None:
        super().__init__(file, protocol=protocol)
        self._dirs: dict[str, Path] = {}

    def reducer_override(self, obj):
        if type(obj) is not PosixPath:
            return NotImplemented
        parent = obj.parent
        if parent == obj or not obj.name:
            return PosixPath, (os.fspath(obj),)
        # The same parent object every time, so pickle's memo stores it once.
        parent = self._dirs.setdefault(os.fspath(parent), parent)
        return inventory.child_path, (parent, obj.name)


def _scan(item: tuple[Path, SizeCache]) -> inventory.ScratchInventory:
    scratch_dir, cache = item
    return inventory.scan(scratch_dir, cache=cache)  # looked up at call time (tests replace inventory.scan)


def scan_many(scratch_dirs: list[Path]) -> list[inventory.ScratchInventory]:
    """inventory.scan of every dir (default size cache), in order; the same
    result as scanning them one after another.  The dirs are dealt out to
    forked workers; when enough checkpoints are cold, each process has its
    share's measured by one find (inventory_cold) while it reads their
    trainer states, and scans its share of dirs in one piece."""
    dirs = list(scratch_dirs)
    # No cyclic garbage is made here, but a cold scan allocates enough objects
    # to run the collector over and over (~5% of the scan): off meanwhile.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _scan_many(dirs)
    finally:
        if enabled:
            gc.enable()


def _scan_many(dirs: list[Path]) -> list[inventory.ScratchInventory]:
    count = workers.worker_count(len(dirs))
    caches = [(d, SizeCache.for_scratch_dir(d)) for d in dirs]
    cold = inventory_cold.cold_checkpoints(caches)
    if sum(map(len, cold.values())) < inventory_cold.MIN_CHECKPOINTS:
        return workers.forked_map(_scan, caches, count, pickler=_PathPickler)

    def scan_share(share: list[tuple[Path, SizeCache]]) -> list[inventory.ScratchInventory]:
        pending = [ckpt for d, _ in share for ckpt in cold.get(d, ())]
        measured = inventory_cold.measure_checkpoints(pending, processes=1)
        return [inventory.scan(d, cache=cache, measured=measured) for d, cache in share]

    per = -(-len(caches) // count)
    shares = [caches[i:i + per] for i in range(0, len(caches), per)]
    return [inv for share in workers.forked_map(scan_share, shares, len(shares), pickler=_PathPickler)
            for inv in share]
