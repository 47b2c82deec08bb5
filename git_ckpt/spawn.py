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


def _spawn(argv: list[str], env: dict[str, str] | None) -> Callable[[], tuple[int, bytes, bytes]]:
    """stdout and stderr to pipes, started with posix_spawn: vfork + exec as
    subprocess does (safe in a threaded process).  It cannot change the
    directory, so git gets `-C` instead (see git.start_git).  Like subprocess,
    SIGPIPE and SIGXFSZ are reset in the child; unlike it, fds the caller
    made inheritable stay open in the child (Python makes none by default).
    """
    import _signal  # the C half of `signal`, always loaded: `signal` itself costs an enum import
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if min(out_r, out_w, err_r, err_w) <= 2:  # stdio closed in this process: let subprocess cope
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        return _ready(_run_with_input(argv, env, None))
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
    return lambda: _collect(pid, out_r, err_r)


def _collect(pid: int, out_r: int, err_r: int) -> tuple[int, bytes, bytes]:
    import _signal
    import select
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    reaped = False
    try:
        # Both pipes at once, so a chatty stderr cannot block git while we wait on stdout.
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
        status = os.waitpid(pid, 0)[1]
        reaped = True
    finally:
        os.close(out_r)
        os.close(err_r)
        if not reaped:  # interrupted: do not leave git running (as subprocess.run does)
            try:
                os.kill(pid, _signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
    return os.waitstatus_to_exitcode(status), b''.join(chunks[out_r]), b''.join(chunks[err_r])


def _ready(value):
    """A collect function for a result that is already there."""
    return lambda: value


def _run_with_input(argv: list[str], env: dict[str, str] | None,
                    input: bytes | None) -> tuple[int, bytes, bytes]:
    """subprocess for what _spawn does not do: feeding stdin (cat-file --batch)."""
    import subprocess
    proc = subprocess.run(argv, env=env, capture_output=True, input=input)
    return proc.returncode, proc.stdout, proc.stderr
