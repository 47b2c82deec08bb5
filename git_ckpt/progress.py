"""A bytes/s progress bar for anything that copies (rich, imported lazily).

Silent when stderr is not a terminal, so logs and pipes stay clean.
"""
from __future__ import annotations

import contextlib
import sys


class _Silent:
    def advance(self, n: int) -> None:
        pass


class _Bar:
    def __init__(self, progress, task) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int) -> None:
        self._progress.update(self._task, advance=n)


@contextlib.contextmanager
def byte_progress(total: int, description: str, enabled: bool | None = None):
    """Yield an object with advance(nbytes); a rich bar on a TTY, else nothing.

    `enabled` None means: on when stderr is a TTY and the copy is not tiny.
    """
    if enabled is None:
        enabled = sys.stderr.isatty() and total >= (1 << 20)
    if not enabled:
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)
    columns = (TextColumn('{task.description}'), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield _Bar(progress, progress.add_task(description, total=total))
