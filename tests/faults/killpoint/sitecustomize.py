"""Kill -9 at a deterministic point of a git-ckpt process (fault suite only).

Put this directory on PYTHONPATH of the process under test.  An audit hook
counts the operations that change the filesystem (opens for writing, renames,
unlinks, rmdirs, mkdirs, links, chmods, utimes) and, with
GIT_CKPT_TEST_KILL_AT=N, sends the process SIGKILL just before the N-th one
runs: a real kill -9, at a phase point chosen by number, with no hook in
git-ckpt itself.  With GIT_CKPT_TEST_COUNT_FILE=PATH it only counts, and
writes "<count> <time of the first> <time of the last>" to PATH at exit
(to calibrate the random points and the kill delays).
"""
import os
import sys

_AT = int(os.environ.get('GIT_CKPT_TEST_KILL_AT') or 0)
_COUNT_FILE = os.environ.get('GIT_CKPT_TEST_COUNT_FILE')

if _AT or _COUNT_FILE:
    import signal
    import time

    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _EVENTS = frozenset({'os.rename', 'os.remove', 'os.rmdir', 'os.mkdir', 'os.symlink', 'os.link',
                         'os.chmod', 'os.utime', 'os.truncate'})
    _state = {'n': 0, 'first': 0.0, 'last': 0.0}

    def _mutating(event, args):
        if event in _EVENTS:
            return True
        if event != 'open' or len(args) < 3:
            return False
        mode, flags = args[1], args[2]
        if isinstance(mode, str) and any(c in mode for c in 'wax+'):
            return True
        return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)

    def _hook(event, args):
        if not _mutating(event, args):
            return
        _state['n'] += 1
        now = time.time()
        _state['first'] = _state['first'] or now
        _state['last'] = now
        if _state['n'] == _AT:
            os.kill(os.getpid(), signal.SIGKILL)

    if _COUNT_FILE:
        import atexit

        def _write_count():
            with open(_COUNT_FILE, 'x') as f:  # its own open is counted after the report: harmless
                f.write(f"{_state['n']} {_state['first']} {_state['last']}\n")
        atexit.register(_write_count)

    sys.addaudithook(_hook)
