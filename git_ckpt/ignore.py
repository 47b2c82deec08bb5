"""The marked block git-ckpt keeps in a worktree's .gitignore."""
from __future__ import annotations

from pathlib import Path

from git_ckpt import constants as C


def render_block(extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    patterns = list(C.IGNORE_PATTERNS) + [p for p in extra if p not in C.IGNORE_PATTERNS]
    return [C.IGNORE_BEGIN, *patterns, C.IGNORE_END]


def update_gitignore(top: Path, extra: tuple[str, ...] | list[str] = ()) -> bool:
    """Write or refresh the block in <top>/.gitignore, in place if present.
    Returns True when the file changed."""
    path = top / '.gitignore'
    try:
        # Not every .gitignore is UTF-8: keep undecodable bytes as they are.
        old = path.read_text(encoding='utf-8', errors='surrogateescape')
    except FileNotFoundError:
        old = ''
    lines = old.splitlines()
    block = render_block(extra)
    span = _block_span(lines)
    if span is not None:
        start, end = span
        new_lines = lines[:start] + block + lines[end + 1:]
    else:
        new_lines = lines + ([''] if lines and lines[-1].strip() else []) + block
    new = '\n'.join(new_lines) + '\n'
    if new == old:
        return False
    path.write_text(new, encoding='utf-8', errors='surrogateescape')
    return True


def _block_span(lines: list[str]) -> tuple[int, int] | None:
    """(begin, end) line indexes of our block: the first end marker and the
    nearest begin marker above it, so a stray begin marker left by hand
    never swallows the user's lines between it and our block."""
    try:
        end = lines.index(C.IGNORE_END)
    except ValueError:
        return None
    begins = [i for i in range(end) if lines[i] == C.IGNORE_BEGIN]
    return (begins[-1], end) if begins else None


def has_block(top: Path) -> bool:
    try:
        text = (top / '.gitignore').read_text(encoding='utf-8', errors='surrogateescape')
        return C.IGNORE_BEGIN in text.splitlines()
    except OSError:
        return False
