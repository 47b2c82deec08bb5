"""Which scratch dir belongs to which worktree, and making it.

A worktree's scratch dir is  <root>/<project>-<repo id>/<worktree name>-<worktree id>,
from the ids identity.py keeps in git's own admin dirs.  Standard library
only (the hooks import it).
"""
from __future__ import annotations

import os
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import git
from git_ckpt.errors import GitCkptError
from git_ckpt.identity import RepoIdentity, live_worktree_leaves, repo_identity, worktree_leaf
from git_ckpt.records import record
from git_ckpt.scratch import (
    check_existing_path, check_root, ensure_private_dir, ensure_standalone_dir, json_text_holds,
    mark_standalone_dir, now_iso, read_json, write_json_atomic,
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
