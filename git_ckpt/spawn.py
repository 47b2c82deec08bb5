"""Starting a process with its output captured, without the subprocess module.

git.run_git's engine.  Importing subprocess (with locale, signal, threading,
selectors) costs ~3 ms, a tenth of what `git_ckpt.setup()` may take at the top
of every training script.  Standard library only.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (hook path)
if TYPE_CHECKING:
    from collections.abc import Callable


def start(argv: list[str], env: dict[str, str] | None,
          input: bytes | None = None) -> Callable[[], tuple[int, bytes, bytes]]:
    """Start argv (in the current directory); returns the function that waits
    for it and returns (returncode, stdout, stderr).  Call that exactly once,
    also on error paths: it reaps the process.  Raises FileNotFoundError when
    argv[0] is not on PATH."""
    if input is not None:
        return _ready(_run_with_input(argv, env, input))
    return _spawn(argv, env)


def start_all(argvs: list[list[str]], env: dict[str, str] | None,
              pipe_size: int = 0) -> Callable[[], list[tuple[int, bytes, bytes]]]:
    """Start every argv at once; returns the function that waits for all of
    them, reading all their pipes together (one waited for alone would stall
    the others once their pipes fill), and returns [(returncode, stdout,
    stderr)] in order.  `pipe_size`: ask for stdout pipes this big (Linux
    F_SETPIPE_SZ; best effort), so a process with more output than the
    default 64 KiB keeps running while the caller does other work.  Raises
    FileNotFoundError when argv[0] is not on PATH (none left running)."""
    procs: list[tuple[int, int, int]] = []
    try:
        for argv in argvs:
            procs.append(_posix_spawn(argv, env, pipe_size))
    except BaseException:
        _collect_many(procs)  # reap what did start
        raise
    return lambda: _collect_many(procs)


def _spawn(argv: list[str], env: dict[str, str] | None) -> Callable[[], tuple[int, bytes, bytes]]:
    """stdout and stderr to pipes, started with posix_spawn: vfork + exec as
    subprocess does (safe in a threaded process).  It cannot change the
    directory, so git gets `-C` instead (see git.start_git).  Like subprocess,
    SIGPIPE and SIGXFSZ are reset in the child; unlike it, fds the caller
    made inheritable stay open in the child (Python makes none by default).
    """
    try:
        pid, out_r, err_r = _posix_spawn(argv, env)
    except _StdioClosed:  # stdio closed in this process: let subprocess cope
        return _ready(_run_with_input(argv, env, None))
    return lambda: _collect_many([(pid, out_r, err_r)])[0]


class _StdioClosed(OSError):
    """Our stdin/stdout/stderr are closed: the pipes would land on fds 0-2."""


def _posix_spawn(argv: list[str], env: dict[str, str] | None, pipe_size: int = 0) -> tuple[int, int, int]:
    """(pid, stdout read end, stderr read end) of argv started by posix_spawnp."""
    import _signal  # the C half of `signal`, always loaded: `signal` itself costs an enum import
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if min(out_r, out_w, err_r, err_w) <= 2:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        raise _StdioClosed()
    if pipe_size:
        try:
            import fcntl
            fcntl.fcntl(out_w, getattr(fcntl, 'F_SETPIPE_SZ', 1031), pipe_size)
        except (ImportError, OSError):
            pass  # a smaller pipe only means waiting sooner
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ if env is None else env,
                              file_actions=[(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)],
                              setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ))
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    return pid, out_r, err_r


def _collect_many(procs: list[tuple[int, int, int]]) -> list[tuple[int, bytes, bytes]]:
    """Read every pipe of `procs` until it ends, then reap each process."""
    import _signal
    import select
    chunks: dict[int, list[bytes]] = {fd: [] for _, out_r, err_r in procs for fd in (out_r, err_r)}
    statuses: dict[int, int] = {}
    try:
        # All pipes at once, so a chatty stderr (or another process) cannot block one we wait on.
        poller = select.poll()
        for fd in chunks:
            poller.register(fd, select.POLLIN)
        remaining = len(chunks)
        while remaining:
            for fd, _ in poller.poll():
                data = os.read(fd, 65536)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    remaining -= 1
        for pid, _, _ in procs:
            statuses[pid] = os.waitpid(pid, 0)[1]
    finally:
        for fd in chunks:
            os.close(fd)
        for pid, _, _ in procs:
            if pid not in statuses:  # interrupted: do not leave them running (as subprocess.run does)
                try:
                    os.kill(pid, _signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
    return [(os.waitstatus_to_exitcode(statuses[pid]), b''.join(chunks[out_r]), b''.join(chunks[err_r]))
            for pid, out_r, err_r in procs]


def _ready(value):
    """A collect function for a result that is already there."""
    return lambda: value


def _run_with_input(argv: list[str], env: dict[str, str] | None,
                    input: bytes | None) -> tuple[int, bytes, bytes]:
    """subprocess for what _spawn does not do: feeding stdin (cat-file --batch)."""
    import subprocess
    proc = subprocess.run(argv, env=env, capture_output=True, input=input)
    return proc.returncode, proc.stdout, proc.stderr
