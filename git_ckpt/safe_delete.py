"""Deleting inside a managed scratch dir without ever following a symlink.

Everything is done relative to directory fds opened with O_NOFOLLOW, starting
from the scratch dir itself (which must carry a manifest): a path component
swapped for a symlink between listing and deleting makes the open fail
instead of leading somewhere else, and a symlink found inside a tree is
unlinked as a link (its target is never touched).  Same idea as
shutil.rmtree's fd-based path, plus the checks git-ckpt needs.
Standard library only.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see git.py)
if TYPE_CHECKING:
    from typing import Callable

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_managed_dir(scratch_dir: Path) -> int:
    """An fd on a scratch dir that is a real directory with a manifest; raises otherwise."""
    try:
        fd = os.open(scratch_dir, DIR_FLAGS)
    except OSError as exc:
        why = 'it is a symlink or not a directory' if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        raise GitCkptError(f'cannot open scratch dir {scratch_dir}: {why}', 'nothing was deleted')
    try:
        mfd = os.open(C.MANIFEST_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        os.close(mfd)
    except OSError:
        os.close(fd)
        raise GitCkptError(f'{scratch_dir} has no {C.MANIFEST_NAME}: git-ckpt does not manage it',
                           'nothing was deleted; git-ckpt deletes only inside its own scratch dirs')
    return fd


def open_parent(base_fd: int, relative: PurePosixPath) -> int:
    """An fd on the parent of `relative` (inside base_fd), each component opened
    with O_NOFOLLOW.  Raises OSError (ELOOP/ENOTDIR) if any is not a real dir."""
    if relative.is_absolute() or '..' in relative.parts or not relative.parts:
        raise OSError(errno.EINVAL, f'not a path inside the scratch dir: {relative}')
    fd = os.dup(base_fd)
    try:
        for part in relative.parts[:-1]:
            new = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


def rmtree_at(parent_fd: int, name: str) -> None:
    """Delete the directory `name` under parent_fd and everything in it.

    Symlinks (at any depth) are unlinked, never followed.  File types come
    from getdents (d_type), so files are unlinked without a stat each, like
    `rm -rf`.  Raises OSError on the first failure.
    """
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            os.unlink(name, dir_fd=parent_fd)  # became a link/file: remove it as such
            return
        raise
    try:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, is_dir in entries:
            if is_dir:
                rmtree_at(fd, child)
            else:
                try:
                    os.unlink(child, dir_fd=fd)
                except IsADirectoryError:  # replaced by a dir meanwhile
                    rmtree_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def lstat_at(parent_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def is_real_dir(st: os.stat_result | None) -> bool:
    return st is not None and stat.S_ISDIR(st.st_mode)


def _open_parent_within(path: Path, within: Path) -> int:
    """An fd on path's parent, reached from `within` one real directory at a
    time: a symlink swapped in anywhere below `within` is refused."""
    try:
        relative = PurePosixPath(path.relative_to(within))
    except ValueError:
        raise GitCkptError(f'{path} is not inside {within}', 'nothing was deleted')
    base_fd = os.open(within, DIR_FLAGS)
    try:
        return open_parent(base_fd, relative)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise GitCkptError(f'a directory on the way to {path} is a symlink now; refusing to delete '
                               'through it', 'nothing was deleted')
        raise
    finally:
        os.close(base_fd)


def remove_tree(path: str | os.PathLike[str], *,
                may_delete: Callable[[str, os.stat_result], bool] | None = None,
                within: str | os.PathLike[str] | None = None) -> list[str]:
    """Delete the directory `path` and what is under it, by fd, never following
    a symlink; return the relative paths left behind (empty: `path` is gone).

    With `may_delete(relative path, lstat)`, only the files and symlinks it
    approves go, and directories once empty (archive: delete from a source
    exactly what its verified copy vouches for).  With `within` (a directory
    above `path`, e.g. the managed scratch dir), every directory between the
    two is opened with O_NOFOLLOW too, not only `path` itself.  The caller
    decides whether `path` may be deleted at all; a missing `path` is not an
    error.
    """
    path = Path(os.path.abspath(path))
    try:
        if within is not None and path != Path(os.path.abspath(within)):
            parent_fd = _open_parent_within(path, Path(os.path.abspath(within)))
        else:
            parent_fd = os.open(path.parent, DIR_FLAGS)
    except FileNotFoundError:
        return []
    try:
        st = lstat_at(parent_fd, path.name)
        if st is None:
            return []
        if not is_real_dir(st):
            raise GitCkptError(f'{path} is not a directory (a symlink?); refusing to delete through it',
                               'nothing was deleted')
        if may_delete is None:
            rmtree_at(parent_fd, path.name)
            return []
        fd = os.open(path.name, DIR_FLAGS, dir_fd=parent_fd)
        try:
            left = _remove_approved(fd, '', may_delete)
        finally:
            os.close(fd)
        if not left:
            os.rmdir(path.name, dir_fd=parent_fd)
        return left
    finally:
        os.close(parent_fd)


def unlink_within(path: str | os.PathLike[str], within: str | os.PathLike[str]) -> None:
    """Unlink the file or symlink `path`, every directory from `within` down
    to it opened with O_NOFOLLOW (see remove_tree)."""
    path = Path(os.path.abspath(path))
    parent_fd = _open_parent_within(path, Path(os.path.abspath(within)))
    try:
        os.unlink(path.name, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)


def _remove_approved(dir_fd: int, prefix: str,
                     may_delete: Callable[[str, os.stat_result], bool]) -> list[str]:
    left: list[str] = []
    with os.scandir(dir_fd) as it:
        names = [e.name for e in it]
    for name in names:
        rel = f'{prefix}{name}'
        st = lstat_at(dir_fd, name)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link since the lstat
                    left.append(rel)
                    continue
                raise
            try:
                child_left = _remove_approved(child, f'{rel}/', may_delete)
            finally:
                os.close(child)
            if child_left:
                left.extend(child_left)
            else:
                os.rmdir(name, dir_fd=dir_fd)
        elif may_delete(rel, st):
            os.unlink(name, dir_fd=dir_fd)
        else:
            left.append(rel)
    return left
