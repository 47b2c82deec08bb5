"""Running one function over many items in forked worker processes (`forked_map`).

Used where the work is CPU-bound Python plus many short syscalls: the cold
scan of many scratch dirs (one lstat per file) and deleting many checkpoints
(one unlink per file).  Threads do not help there: every syscall drops and
retakes the GIL, and the hand-offs eat the overlap (two threads were no faster
than one on the 50,000-file benchmark tree, up to 1.6x slower; four were 2-3x
slower).  Forked workers share no GIL, so on N free cores N items run at a time.

Each worker streams one pickled (index, result) record per item through a
pipe as soon as the item is done.  Whatever a worker did not report (fork
refused, crash, kill, a truncated record) is run in this process afterwards,
so the results never depend on the workers; a callable must therefore be safe
to run again on an item a worker may have half done (inventory.scan and
retention's per-checkpoint delete re-check everything they touch).
No fork happens in a process that runs other threads (forking those is
unsafe: a training job calling prune() from Python keeps its one process).
Standard library only.
"""
from __future__ import annotations

import os
import sys

from git_ckpt import constants as C

# typing costs ~3 ms to import, on every `git ckpt status`; pickle and signal
# are left to forked_map, never on the commit hook's path (worker_count,
# fork_child).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import pickle
    from collections.abc import Callable, Iterator, Sequence
    from typing import TypeVar
    T = TypeVar('T')
    R = TypeVar('R')


def max_workers() -> int:
    """Processes in all, this one included: GIT_CKPT_WORKERS (1 turns forking
    off, e.g. to compare on a given machine), else C.MAX_WORKERS."""
    value = os.environ.get(C.ENV_WORKERS, '')
    return int(value) if value.isascii() and value.isdigit() and int(value) >= 1 else C.MAX_WORKERS


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def may_fork() -> bool:
    threading = sys.modules.get('threading')
    return hasattr(os, 'fork') and (threading is None or threading.active_count() == 1)


def idle_cpus() -> float:
    """CPUs not taken by runnable processes (ours count: this one is running).
    Workers only pay off on a free core: on a busy machine they measured ~15%
    slower than one process (the fork, pickling, and no core to run on).

    The runnable count of right now (/proc/loadavg's 4th field), not the
    1-minute load average: that one lags by a minute and counts tasks in
    uninterruptible I/O wait, which kept an idle VM (load ~1.3 from kernel
    threads) from ever using its second core."""
    try:
        with open('/proc/loadavg', 'rb') as f:
            running = int(f.read().split()[3].split(b'/')[0])
        return float(cpus() - running + 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        return float(cpus())
    return cpus() - load + 1


def worker_count(items: int, min_per_worker: int = 1) -> int:
    """How many processes (this one included) to use for `items` items."""
    if not may_fork():
        return 1
    free = max(1, round(idle_cpus()))
    return max(1, min(cpus(), free, max_workers(), items // max(min_per_worker, 1)))


def forked_map(fn: Callable[[T], R], items: Sequence[T], workers: int,
               pickler: type[pickle.Pickler] | None = None,
               on_result: Callable[[int, R], None] | None = None) -> list[R]:
    """[fn(item) for item in items] with the items dealt round-robin to
    `workers` processes (this one takes the last share).  `on_result(index,
    result)` is called in this process for every item as its result arrives
    here (this process's own items first, then each worker's)."""
    import pickle
    pickler = pickler or pickle.Pickler
    results: dict[int, R] = {}

    def done(index: int, result: R) -> None:
        results[index] = result
        if on_result is not None:
            on_result(index, result)

    # This process takes the last (never larger) share: it also has the results
    # to unpickle and its caller's work before and after.
    shares = [range(i, len(items), workers) for i in range(max(workers, 1))]
    children: list[tuple[range, tuple[int, int] | None]] = []
    try:
        for share in shares[:-1]:
            children.append((share, _start(fn, items, share, pickler)))
        for i in shares[-1]:
            done(i, fn(items[i]))
        while children:
            share, child = children.pop(0)
            for index, result in _records(child):
                if index in share and index not in results:
                    done(index, result)
            for i in share:  # what the worker did not report: run it here
                if i not in results:
                    done(i, fn(items[i]))
    finally:
        for _, child in children:  # only left on an exception (e.g. Ctrl-C): stop and reap them
            _abandon(child)
    return [results[i] for i in range(len(items))]


def _start(fn, items, share, pickler) -> tuple[int, int] | None:
    """Fork a worker running fn over items[share]; (pid, read end of its pipe) or None."""
    import pickle

    def work(write_fd: int) -> None:
        with open(write_fd, 'wb') as pipe:
            out = pickler(pipe, protocol=pickle.HIGHEST_PROTOCOL)
            for i in share:
                out.dump((i, fn(items[i])))
                pipe.flush()  # streamed: a later crash loses only what is in flight
    return fork_child(work)


def fork_child(work: Callable[[int], None]) -> tuple[int, int] | None:
    """Fork a child running work(write end of a pipe); (pid, read end) or None
    when no pipe or fork could be had.  The child never returns and never runs
    the parent's exit handlers or flushes its buffers: exit 0 after work()
    returned, else 1.  Standard library only (the commit guard uses it)."""
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:
        code = 1
        try:
            os.close(read_fd)
            work(write_fd)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _records(child: tuple[int, int] | None) -> Iterator[tuple[int, object]]:
    """The (index, result) records a worker sent, until its pipe ends; reaps it."""
    if child is None:
        return
    import pickle
    pid, read_fd = child
    try:
        with open(read_fd, 'rb') as pipe:
            records = pickle.Unpickler(pipe)
            while True:
                try:
                    record = records.load()  # our own child's bytes, not outside input
                except EOFError:
                    return
                except Exception:  # noqa: BLE001  (a record cut short by a crash)
                    return
                if isinstance(record, tuple) and len(record) == 2 and isinstance(record[0], int):
                    yield record
    finally:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _abandon(child: tuple[int, int] | None) -> None:
    if child is None:
        return
    pid, read_fd = child
    try:
        os.close(read_fd)  # a worker still writing gets EPIPE
    except OSError:
        pass
    import signal
    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except OSError:
        pass
