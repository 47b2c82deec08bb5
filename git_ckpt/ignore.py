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
    if C.IGNORE_BEGIN in lines and C.IGNORE_END in lines[lines.index(C.IGNORE_BEGIN):]:
        start = lines.index(C.IGNORE_BEGIN)
        end = lines.index(C.IGNORE_END, start)
        new_lines = lines[:start] + block + lines[end + 1:]
    else:
        new_lines = lines + ([''] if lines and lines[-1].strip() else []) + block
    new = '\n'.join(new_lines) + '\n'
    if new == old:
        return False
    path.write_text(new, encoding='utf-8', errors='surrogateescape')
    return True


def has_block(top: Path) -> bool:
    try:
        text = (top / '.gitignore').read_text(encoding='utf-8', errors='surrogateescape')
        return C.IGNORE_BEGIN in text.splitlines()
    except OSError:
        return False
