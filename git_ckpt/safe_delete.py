"""Deleting a directory tree without ever following a symlink.

Shared scratch is multi-user and long-lived: a symlink inside a scratch dir
(or one swapped in while we delete) must never make us delete what it points
at.  Every step works relative to an open directory fd opened with
O_NOFOLLOW, so a directory replaced by a link mid-walk is refused by the
kernel, not by a racy check.  Callers decide *whether* a tree may go (a
managed dir with a manifest, a verified copy's source); this module only
decides *how*.  Standard library only.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Callable

from git_ckpt.errors import GitCkptError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0)

# may_delete(relative path, lstat result) -> whether this file or symlink may go.
Predicate = Callable[[str, os.stat_result], bool]


def remove_tree(path: str | os.PathLike[str], *, may_delete: Predicate | None = None) -> list[str]:
    """Delete `path` and everything below it; return what was left behind.

    Symlinks are removed as links, never followed.  With `may_delete`, only
    the files and links it approves go; directories go once empty.  The
    returned list holds the relative paths kept (empty: `path` is gone).
    A missing `path` is not an error.  `path` itself must be a real directory.
    """
    path = Path(path)
    try:
        parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return []
    try:
        try:
            st = os.stat(path.name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return []
        if not stat.S_ISDIR(st.st_mode):
            raise GitCkptError(f'{path} is not a directory (a symlink?); refusing to delete through it',
                               'remove the link by hand if it is yours')
        fd = os.open(path.name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            left = _remove_contents(fd, '', may_delete)
        finally:
            os.close(fd)
        if not left:
            os.rmdir(path.name, dir_fd=parent_fd)
        return left
    finally:
        os.close(parent_fd)


def _remove_contents(dir_fd: int, prefix: str, may_delete: Predicate | None) -> list[str]:
    left: list[str] = []
    with os.scandir(dir_fd) as it:
        entries = list(it)
    for entry in entries:
        rel = f'{prefix}{entry.name}'
        st = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # swapped for a link since the lstat
                    left.append(rel)
                    continue
                raise
            try:
                child_left = _remove_contents(child, f'{rel}/', may_delete)
            finally:
                os.close(child)
            if child_left:
                left.extend(child_left)
            else:
                os.rmdir(entry.name, dir_fd=dir_fd)
        elif may_delete is None or may_delete(rel, st):
            os.unlink(entry.name, dir_fd=dir_fd)
        else:
            left.append(rel)
    return left
