"""One mutating command per scratch dir at a time (prune, archive, gc, remove, migrate).

An flock on <root>/.git-ckpt/locks/<project>/<worktree>.lock: the kernel drops
it when the holder exits, even on kill -9, so there are no stale locks to
clean up.  The holder writes who it is into the file, so the loser can say
whom it is waiting for.  Standard library only.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record
from git_ckpt.scratch import check_owned_file, local_now_iso
from git_ckpt.state import state_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see git.py)
if TYPE_CHECKING:
    from typing import Iterator


class Holder(record('Holder', 'pid command host started')):
    __slots__ = ()

    def describe(self) -> str:
        return f'`git ckpt {self.command}` (pid {self.pid} on {self.host}, started {self.started})'


def lock_path(scratch_dir: Path, *, create: bool = True) -> Path:
    return state_file(Path(scratch_dir), C.LOCK_DIR, '.lock', create=create)


def read_holder(path: Path) -> Holder | None:
    """Who holds (or last held) the lock at `path`, or None if unknown."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        return Holder(int(data['pid']), str(data['command']), str(data['host']), str(data['started']))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def scratch_lock(scratch_dir: Path, command: str, *, wait: bool = False,
                 timeout: float | None = None) -> Iterator[Path]:
    """Hold the scratch dir's lock for the `with` body; yields the lock file path.

    Non-blocking by default: raises GitCkptError naming the holder.  With
    `wait`, polls until free (or `timeout` seconds, then raises).
    """
    path = lock_path(scratch_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        check_owned_file(path)  # a planted symlink (ELOOP) or a fifo: say so
        raise GitCkptError(f'cannot open lock file {path}: {exc.strerror}',
                           'check the permissions of the scratch root')
    try:
        _check_opened(fd, path)
        _acquire(fd, path, scratch_dir, wait, timeout)
        # uname's nodename is what socket.gethostname() returns (without importing socket).
        info = {'pid': os.getpid(), 'command': command, 'host': os.uname().nodename,
                'started': local_now_iso()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode() + b'\n', 0)
        except OSError:
            pass  # a full root: the flock is the lock, the holder's name only helps messages
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released: no holder to name
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _check_opened(fd: int, path: Path) -> None:
    """The lock file must be a regular file of ours: root opens anyone's file,
    and the holder's details are written into it."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        check_owned_file(path)
        raise GitCkptError(f'lock file {path} is not a regular file of yours', 'remove it and run again')


def _acquire(fd: int, path: Path, scratch_dir: Path, wait: bool, timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:
            raise GitCkptError(f'cannot lock {path}: {exc.strerror}',
                               'the scratch filesystem may not support locks; run one command at a time')
        if not wait or (deadline is not None and time.monotonic() >= deadline):
            holder = read_holder(path)
            who = holder.describe() if holder else 'another git-ckpt process (it is just starting)'
            raise GitCkptError(f'{scratch_dir} is in use by {who}',
                               'wait for it to finish and run again')
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
