"""The one error type users see: a problem and its fix, printed as one line."""
from __future__ import annotations


class GitCkptError(Exception):
    """A failure the user can act on.

    `problem` says what is wrong, `fix` what to do about it.  The CLI prints
    them on one line of stderr and exits non-zero; `setup()` raises it as is.
    """

    def __init__(self, problem: str, fix: str = '') -> None:
        super().__init__(problem, fix)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        line = f'{self.problem}; {self.fix}' if self.fix else self.problem
        # One line, whatever the paths in it contain.
        return line.replace('\n', '\\n')


def error_line(exc: BaseException) -> str:
    return f'git-ckpt: error: {exc}'


def report(exc: BaseException) -> int:
    """Print one stderr line for an exception that reached the top; return the
    exit code.  Shared by the click CLI and the fast paths that avoid click."""
    import errno
    import os
    import sys
    if isinstance(exc, GitCkptError):
        print(error_line(exc), file=sys.stderr)
        return 1
    if isinstance(exc, KeyboardInterrupt):
        print('git-ckpt: interrupted', file=sys.stderr)
        return 130
    if isinstance(exc, BrokenPipeError):
        # The reader went away (`git ckpt status | head`): not an error to
        # report.  Point stdout at /dev/null so the flush at exit stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE: what the shell reports for a tool the pipe stopped
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f' of {os.path.dirname(exc.filename) or "."}' if isinstance(exc.filename, str) else ''
        print(f'git-ckpt: error: no space left on the filesystem{where} ({exc.strerror}); free space there '
              '(git ckpt status shows what uses it; git ckpt prune --keep N) or choose another root',
              file=sys.stderr)
        return 1
    if isinstance(exc, OSError):
        where = f' {exc.filename}' if exc.filename else ''
        print(f'git-ckpt: error: {exc.strerror or exc}{where}; check the path and its permissions',
              file=sys.stderr)
        return 1
    if os.environ.get('GIT_CKPT_DEBUG'):
        raise exc
    print(f'git-ckpt: internal error: {exc!r}; rerun with GIT_CKPT_DEBUG=1 for the traceback '
          'and report it', file=sys.stderr)
    return 3
