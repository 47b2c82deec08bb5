"""Ids kept in git's own admin dirs: the repository's id and name
(`<common dir>/ckpt-repo`) and each worktree's leaf (`<git dir>/ckpt-worktree`,
"<name>-<id>"), from which worktree.py builds scratch paths.

The ids are random.  The repo id tells two repositories with the same
basename apart (and a copy from its original); the worktree id survives
branch switches and `git worktree move` but dies with `git worktree
remove`/`prune`, so a worktree re-added under an old admin name gets a NEW
scratch dir and never resumes from the removed one's checkpoints.
Standard library only (the hooks import it).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record
from git_ckpt.scratch import write_text_atomic

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see git.py)
if TYPE_CHECKING:
    from git_ckpt.worktree import Worktree


def _read_or_create_id_file(path: Path, make_value) -> str:
    """Read a small id file; create it atomically if missing.

    Several processes (ranks of one job) may race here: the value is written
    to a private temp file and hard-linked into place, so exactly one wins
    and everyone reads the winner's value.
    """
    try:
        return path.read_text(encoding='utf-8').strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise GitCkptError(f'cannot read {path}: {exc.strerror}', 'check the permissions of the git dir')
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.{os.urandom(4).hex()}')
    try:
        tmp.write_text(make_value() + '\n', encoding='utf-8')
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    except OSError as exc:
        raise GitCkptError(f'cannot write {path}: {exc.strerror}', 'check the permissions of the git dir')
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass
    return path.read_text(encoding='utf-8').strip()


def _new_id() -> str:
    # os.urandom rather than `secrets`: same source, ~10 ms less import on the hook path.
    return os.urandom(C.ID_HEX_LEN // 2).hex()


def sanitize_component(name: str) -> str:
    """A readable directory name: control characters and leading dots replaced."""
    cleaned = ''.join('_' if ord(ch) < 32 or ch == '/' else ch for ch in name).lstrip('.')
    return cleaned[:C.MAX_NAME_LEN] or 'worktree'


def default_project_name(common_dir: Path) -> str:
    """The repository's name: the main worktree's dir, or a bare repo's name."""
    if common_dir.name == '.git':
        name = common_dir.parent.name
    else:
        name = common_dir.name[:-4] if common_dir.name.endswith('.git') else common_dir.name
    return sanitize_component(name)


class RepoIdentity(record('RepoIdentity', 'repo_id auto_name')):
    """auto_name: the repo's name when the id was made; kept so renames keep the dir."""
    __slots__ = ()


def repo_identity(common_dir: Path) -> RepoIdentity:
    """The repository's id and name, from `<common dir>/ckpt-repo`:
    "<id> <name>" on the first line, the common dir it was made in on the
    second.  A copy (`cp -r proj proj2`) carries the file along; it is told
    apart from a move by the original still being there, and gets a new id,
    so the two repositories do not share scratch dirs."""
    path = common_dir / C.REPO_ID_FILE

    def make() -> str:
        return f'{_new_id()} {default_project_name(common_dir)}\n{common_dir}'
    raw = _read_or_create_id_file(path, make)
    first, _, recorded = raw.partition('\n')
    repo_id, _, name = first.partition(' ')
    if not repo_id.isalnum():
        raise GitCkptError(f'{path} is damaged (holds {first!r})',
                           'delete it; the repository then gets a new project dir')
    identity = RepoIdentity(repo_id, name or default_project_name(common_dir))
    if recorded.strip() != os.fspath(common_dir):
        identity = _rekey_if_copied(path, common_dir, Path(recorded.strip()), identity)
    return identity


def _rekey_if_copied(path: Path, common_dir: Path, recorded: Path, identity: RepoIdentity) -> RepoIdentity:
    """The id file was made in another directory: a copy gets a new id; a
    move (or a file from before the path was recorded) just records the new
    place.  Under a lock, so concurrent first calls in a copy agree."""
    lock = common_dir / 'ckpt-repo.lock'
    for _ in range(200):
        try:
            os.mkdir(lock)
            break
        except FileExistsError:
            if _age_seconds(lock) > 10:  # left by a killed process (it is held for microseconds)
                _rmdir_quietly(lock)
            time.sleep(0.025)
    else:
        raise GitCkptError(f'{lock} is held for too long', 'remove it if no git-ckpt is running')
    try:
        first, _, now_recorded = path.read_text(encoding='utf-8').strip().partition('\n')
        if now_recorded.strip() == os.fspath(common_dir):  # another process got here first
            repo_id, _, name = first.partition(' ')
            return RepoIdentity(repo_id, name or identity.auto_name)
        copied = (
            recorded.is_absolute() and recorded.is_dir()
            and not os.path.samefile(recorded, common_dir)
            and _first_word(recorded / C.REPO_ID_FILE) == identity.repo_id
        )
        if copied:
            identity = RepoIdentity(_new_id(), default_project_name(common_dir))
        write_text_atomic(path, f'{identity.repo_id} {identity.auto_name}\n{common_dir}\n')
        return identity
    finally:
        os.rmdir(lock)


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def _rmdir_quietly(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def _first_word(path: Path) -> str | None:
    try:
        return path.read_text(encoding='utf-8').split(None, 1)[0]
    except (OSError, IndexError):
        return None


def worktree_leaf(worktree: 'Worktree') -> str:
    """`<name>-<id>` for this worktree, fixed when first asked for."""
    def make() -> str:
        return f'{sanitize_component(worktree.top.name)}-{_new_id()}'
    path = worktree.git_dir / C.WORKTREE_ID_FILE
    leaf = _read_or_create_id_file(path, make)
    # It becomes a path component under the root: never let a damaged file
    # point elsewhere.
    if not leaf or leaf in ('.', '..') or '/' in leaf or '\0' in leaf:
        raise GitCkptError(f'{path} is damaged (holds {leaf!r})',
                           'delete it; the worktree then gets a new scratch dir')
    return leaf


def read_worktree_leaf(git_dir: Path) -> str | None:
    """The leaf of an existing worktree, without creating one."""
    try:
        return (git_dir / C.WORKTREE_ID_FILE).read_text(encoding='utf-8').strip() or None
    except OSError:
        return None


def live_worktree_leaves(common_dir: Path) -> dict[str, Path]:
    """leaf -> admin dir, for every worktree git still knows about.

    Read from the admin dirs themselves rather than from `git worktree list`,
    so a worktree whose directory was deleted but not yet pruned still counts
    as alive (git still has it), and nothing has to be spawned.
    """
    live = {}
    main_leaf = read_worktree_leaf(common_dir)
    if main_leaf:
        live[main_leaf] = common_dir
    try:
        admin_dirs = list(os.scandir(common_dir / 'worktrees'))
    except OSError:
        admin_dirs = []
    for entry in admin_dirs:
        leaf = read_worktree_leaf(Path(entry.path))
        if leaf:
            live[leaf] = Path(entry.path)
    return live
