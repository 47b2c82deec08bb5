"""Small output helpers shared by commands (stdlib only)."""
from __future__ import annotations

import os
import sys

from git_ckpt.settings import quiet


def info(message: str) -> None:
    if not quiet():
        print(message)


def warn(message: str) -> None:
    print(f'git-ckpt: warning: {message}', file=sys.stderr)


def human_size(n: int | float) -> str:
    """1536 -> '1.5K'; the same units as `du -h`."""
    for unit in ('B', 'K', 'M', 'G', 'T', 'P'):
        if abs(n) < 1024 or unit == 'P':
            return f'{n:.0f}{unit}' if unit == 'B' else f'{n:.1f}{unit}'
        n /= 1024
    return f'{n:.1f}P'  # pragma: no cover


def use_color(stream=sys.stdout) -> bool:
    return stream.isatty() and 'NO_COLOR' not in os.environ
