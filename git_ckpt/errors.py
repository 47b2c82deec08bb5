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
