"""Copying several files at once, on as many cores as help.

sha256 and the read/write/fsync system calls release the GIL, so two
threads that each copy their own file use two cores with no hand-off per
block.  One file much larger than the rest would leave the second thread
idle; it is copied alone, pipelined inside copy_file instead.  The first
failure stops the other thread at its next block and is raised.
"""
from __future__ import annotations

import os
import threading
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see git.py)
if TYPE_CHECKING:
    from typing import Callable, Sequence

# Threads that copy files side by side (at most; see plan_workers).
MAX_WORKERS = 2
# None: by cores and file sizes (plan_workers); a number forces it (tests).
WORKERS: int | None = None


class Cancelled(Exception):
    """Raised inside a worker when another one failed."""


def plan_workers(sizes: Sequence[int]) -> int:
    """How many files to copy at once: one on one core, or when one file
    dominates the bytes (then a pipeline inside it does better); else two.
    The load does not matter: unlike the pipeline, two independent copies
    cost no more CPU than one thread doing both."""
    if WORKERS is not None:
        return max(1, min(WORKERS, len(sizes)))
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = 1
    if cpus < 2 or len(sizes) < 2:
        return 1
    total = sum(sizes)
    if not total or max(sizes) * 2 > total:
        return 1
    return min(MAX_WORKERS, cpus, len(sizes))


def run_parallel(jobs: Sequence, work: Callable, advance: Callable[[int], None]) -> None:
    """Call work(job, advance, pipeline) for every job (largest first), on
    plan_workers() threads.  `pipeline` is False when several run at once
    (None: copy_file decides).  Raises the first failure."""
    jobs = sorted(jobs, key=lambda e: -e.size)
    workers = plan_workers([e.size for e in jobs])
    if workers == 1:
        for job in jobs:
            work(job, advance, None)
        return
    lock = threading.Lock()
    pending = list(reversed(jobs))          # pop() takes the largest
    failures: list[BaseException] = []
    stop = threading.Event()

    def checked_advance(n: int) -> None:
        if stop.is_set():
            raise Cancelled()
        advance(n)

    def worker() -> None:
        while not stop.is_set():
            with lock:
                if not pending:
                    return
                job = pending.pop()
            try:
                work(job, checked_advance, False)
            except Cancelled:
                return
            except BaseException as exc:  # handed to the caller, which raises it
                with lock:
                    failures.append(exc)
                stop.set()
                return

    threads = [threading.Thread(target=worker, name=f'git-ckpt-copy-{i}', daemon=True)
               for i in range(workers)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        stop.set()             # e.g. Ctrl-C in the main thread: workers stop at their next block
        for t in threads:
            t.join()
    if failures:
        raise failures[0]
