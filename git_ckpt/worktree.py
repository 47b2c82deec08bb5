"""Worktree identity: which scratch dir belongs to which worktree.

A worktree's scratch dir is  <root>/<project>-<repo id>/<worktree name>-<worktree id>.
The ids are random and live in files inside git's own admin dirs:
- the repo id in the common git dir, so two repos with the same basename differ;
- the worktree id in the worktree's git dir (.git/worktrees/<name>/), so it
  survives branch switches and `git worktree move` but dies with
  `git worktree remove`/`prune`.  git reuses admin names, so a worktree
  re-added under an old name gets a fresh id, hence a NEW dir: it never
  inherits (and resumes from) the removed worktree's checkpoints.
Standard library only (the hooks import it).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import git
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record
from git_ckpt.scratch import (
    check_existing_path, check_root, ensure_private_dir, ensure_standalone_dir, json_text_holds,
    mark_standalone_dir, now_iso, read_json, write_json_atomic, write_text_atomic,
)
from git_ckpt.settings import Settings, load_settings, resolve_root, validate_name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see git.py)
if TYPE_CHECKING:
    from collections.abc import Callable


class Worktree(record('Worktree', 'top git_dir common_dir')):
    """top: the worktree's top-level directory; git_dir: its admin dir;
    common_dir: the repository's common git dir (all Paths)."""
    __slots__ = ()

    @property
    def is_main(self) -> bool:
        return self.git_dir == self.common_dir


def current_worktree(cwd: str | os.PathLike[str] | None = None) -> Worktree:
    return _worktree_of(git.repo_paths(cwd))


def _worktree_of(paths: git.RepoPaths) -> Worktree:
    if paths.top is None:
        raise GitCkptError(
            f'{paths.common_dir} is a bare repository (no worktree, so no scratch dir)',
            'run git ckpt inside a worktree: git worktree add ../exp1 && cd ../exp1')
    return Worktree(paths.top, paths.git_dir, paths.common_dir)


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


def worktree_leaf(worktree: Worktree) -> str:
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


def project_dir_name(identity: RepoIdentity, settings: Settings, project_name: str | None = None) -> str:
    if project_name is None:
        configured = settings.get(C.CONFIG_NAME)
        project_name = configured[0] if configured else identity.auto_name
    return f'{validate_name(project_name)}-{identity.repo_id}'


class Location(record('Location', 'root root_real project_dir scratch_dir worktree')):
    """root: the RootChoice; root_real, project_dir, scratch_dir: Paths; worktree: the Worktree."""
    __slots__ = ()


def locate(
        worktree: Worktree,
        *,
        settings: Settings | None = None,
        cli_root: str | None = None,
        project_name: str | None = None,
        create_root: bool = True,
) -> Location:
    """Compute (without creating) where this worktree's scratch dir lives.

    The worktree's identity is fixed here (so a later create gives the same
    path); only the fallback root is created, and not when create_root=False.
    """
    settings = load_settings(worktree.top) if settings is None else settings
    root = resolve_root(cli_root, settings)
    is_fallback = root.warning is not None
    if is_fallback and not create_root and not os.path.lexists(root.path):
        root_real = root.path
    else:
        root_real = check_root(root.path, create_fallback=is_fallback and create_root)
    identity = repo_identity(worktree.common_dir)
    project_dir = root_real / project_dir_name(identity, settings, project_name)
    scratch_dir = project_dir / worktree_leaf(worktree)
    # Every command goes through here: a path someone else pre-created, or a
    # link planted for a dir or manifest, is refused before any read or write.
    check_existing_path(root_real, scratch_dir.relative_to(root_real))
    return Location(root, root_real, project_dir, scratch_dir, worktree)


def current_with_settings() -> tuple[Worktree, Settings]:
    """(current_worktree(), its ckpt.* settings), the git config read
    overlapping rev-parse: two git processes at once.  (In a subdirectory git
    reads the same config as at the top: same repository, same worktree.)"""
    return start_current_with_settings()()


def start_current_with_settings() -> Callable[[], tuple[Worktree, Settings]]:
    """current_with_settings(), its two git processes started now; call the
    result (once) to wait for them.  The archive fast path starts them before
    it imports the copy engine, so git runs while Python imports."""
    read_paths = git.start_repo_paths()
    read_config = git.start_config_get_all()

    def wait() -> tuple[Worktree, Settings]:
        try:
            wt = _worktree_of(read_paths())
        except BaseException:
            try:
                read_config()  # reap it; the rev-parse error is the one to report
            except GitCkptError:
                pass
            raise
        return wt, Settings(tuple(read_config()))
    return wait


def locate_current(*, project_name: str | None = None) -> Location:
    """locate(current_worktree()) with setup()'s two git processes at once."""
    wt, settings = current_with_settings()
    return locate(wt, settings=settings, project_name=project_name)


def create_scratch_dir(location: Location) -> bool:
    """Make the scratch dir and its manifests; True if it was created now."""
    wt = location.worktree
    ensure_private_dir(location.root_real, location.project_dir.relative_to(location.root_real))
    repo_manifest = location.project_dir / C.REPO_MANIFEST_NAME
    if not json_text_holds(repo_manifest, {'schema': C.MANIFEST_SCHEMA}) and read_json(repo_manifest) is None:
        write_json_atomic(repo_manifest, {
            'schema': C.MANIFEST_SCHEMA,
            'repo': os.fspath(wt.common_dir),
            'repo_id': repo_identity(wt.common_dir).repo_id,
            'created': now_iso(),
            'tool_version': C.VERSION,
        })
    existed = location.scratch_dir.exists() or location.scratch_dir.is_symlink()
    ensure_private_dir(location.root_real, location.scratch_dir.relative_to(location.root_real))
    manifest_path = location.scratch_dir / C.MANIFEST_NAME
    # Where the worktree is now: kept current (after `git worktree move`, a
    # repo move or rename), so an orphan's manifest names its last place.
    whereabouts = {
        'repo': os.fspath(wt.common_dir),
        'project': location.project_dir.name,
        'worktree': os.fspath(wt.top),
        'git_dir': os.fspath(wt.git_dir),
    }
    if json_text_holds(manifest_path, {'schema': C.MANIFEST_SCHEMA, **whereabouts}):
        return not existed  # the usual case (every setup() and hook): up to date, json not even imported
    manifest = read_json(manifest_path)
    if manifest is None:
        write_json_atomic(manifest_path, {
            'schema': C.MANIFEST_SCHEMA,
            'repo_id': repo_identity(wt.common_dir).repo_id,
            'worktree_id': location.scratch_dir.name,
            'branch': git.current_branch(wt.top),
            'created': now_iso(),
            'tool_version': C.VERSION,
            **whereabouts,
        })
    elif any(manifest.get(key) != value for key, value in whereabouts.items()):
        write_json_atomic(manifest_path, {**manifest, **whereabouts})
    return not existed


def dir_from_env(environ=os.environ) -> Path | None:
    """GIT_CKPT_DIR, validated; None when unset."""
    value = environ.get(C.ENV_DIR)
    if not value:
        return None
    path = Path(os.path.abspath(os.path.expanduser(value)))
    if path.exists() and not path.is_dir():
        raise GitCkptError(f'{C.ENV_DIR}={value} is not a directory',
                           f'unset {C.ENV_DIR} or point it at a directory')
    return path


def scratch_dir_for(
        worktree: Worktree,
        *,
        create: bool = True,
        cli_root: str | None = None,
        project_name: str | None = None,
        settings: Settings | None = None,
) -> Path:
    """The scratch dir of `worktree`, created (0700, with manifest) unless create=False."""
    location = locate(worktree, settings=settings, cli_root=cli_root, project_name=project_name,
                      create_root=create)
    if create:
        create_scratch_dir(location)
    return location.scratch_dir


def resolve_scratch_dir(
        cwd: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        cli_root: str | None = None,
        project_name: str | None = None,
) -> Path:
    """The scratch dir for code running in `cwd`: GIT_CKPT_DIR if set (no git
    at all, for batch jobs without the repository), else the worktree's."""
    from_env = dir_from_env()
    if from_env is not None:
        if create:
            ensure_standalone_dir(from_env)
            mark_standalone_dir(from_env)  # as setup() does: managed when new or empty
        return from_env
    return scratch_dir_for(current_worktree(cwd), create=create, cli_root=cli_root,
                           project_name=project_name)


def worktree_path_of(admin_dir: Path, common_dir: Path) -> Path | None:
    """The current path of the worktree an admin dir belongs to (follows
    `git worktree move`), or None when git no longer knows it."""
    if admin_dir == common_dir:
        if common_dir.name == '.git':
            return common_dir.parent
        return git.main_worktree_top(common_dir)  # a submodule (core.worktree) or None (bare)
    try:
        gitfile = (admin_dir / 'gitdir').read_text(encoding='utf-8').strip()
    except OSError:
        return None
    return Path(gitfile).parent


class ScratchEntry(record('ScratchEntry', 'scratch_dir manifest admin_dir worktree_path')):
    """admin_dir: None when the worktree is gone (an orphan); worktree_path:
    its current path if alive."""
    __slots__ = ()

    @property
    def is_orphan(self) -> bool:
        return self.admin_dir is None


def scratch_entries(project_dir: Path, common_dir: Path) -> list[ScratchEntry]:
    """Every managed scratch dir of one repository, alive or orphaned.

    An orphan's manifest names a worktree id that no admin dir carries any
    more, however the worktree went (`git worktree remove`, or `rm -rf` then
    `git worktree prune`, or a removed-then-re-added name).
    """
    from git_ckpt.scratch import iter_managed_dirs
    live = live_worktree_leaves(common_dir)
    out = []
    for scratch_dir, manifest in iter_managed_dirs(project_dir):
        admin = live.get(manifest.get('worktree_id'))
        path = worktree_path_of(admin, common_dir) if admin else None
        out.append(ScratchEntry(scratch_dir, manifest, admin, path))
    return out
