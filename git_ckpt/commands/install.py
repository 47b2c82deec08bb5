"""`git ckpt init` and `git ckpt uninstall`."""
from __future__ import annotations

import os
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import git, hooks, ignore, links, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.output import info, warn
from git_ckpt.scratch import check_root, iter_managed_dirs, write_json_atomic
from git_ckpt.settings import load_settings, validate_name


def pre_commit_snippet() -> str:
    """What to add to .pre-commit-config.yaml when the framework owns the hooks."""
    from git_ckpt.precommit_config import snippet
    return snippet()


def _store_root(wt: worktree.Worktree, root: str, global_: bool) -> Path:
    path = Path(os.path.abspath(os.path.expanduser(root)))
    check_root(path)
    git.config_set(C.CONFIG_ROOT, os.fspath(path), scope='global' if global_ else 'local', cwd=wt.top)
    return path


def _store_name(wt: worktree.Worktree, name: str, settings) -> None:
    """Set ckpt.name; carry the existing project dir over (a rename inside the
    root) so the checkpoints already there are not stranded."""
    validate_name(name)
    try:
        old_dir = worktree.locate(wt, settings=settings).project_dir
    except GitCkptError:
        old_dir = None
    git.config_set(C.CONFIG_NAME, name, cwd=wt.top)
    new_dir = worktree.locate(wt).project_dir
    if not old_dir or old_dir == new_dir or not old_dir.is_dir() or old_dir.is_symlink():
        return
    if os.path.lexists(new_dir):
        warn(f'{new_dir} already exists, so {old_dir} was not moved into it; '
             'move what you need by hand')
        return
    os.rename(old_dir, new_dir)
    # Keep the manifests truthful about the project dir they sit in.
    for scratch_dir, manifest in iter_managed_dirs(new_dir):
        if manifest.get('project') != new_dir.name:
            write_json_atomic(scratch_dir / C.MANIFEST_NAME, {**manifest, 'project': new_dir.name})
    info(f'moved {old_dir} -> {new_dir}')


def init(*, cli_root: str | None, global_: bool, name: str | None,
         link_paths: tuple[str, ...] = (), pre_commit_config: bool = False) -> int:
    wt = worktree.current_worktree()
    # --link paths are checked before anything is changed.
    new_links = [links.normalize(wt.top, p, Path.cwd()) for p in link_paths]
    if global_ and not cli_root:
        raise GitCkptError('--global needs --root', 'e.g. git ckpt init --global --root /scratch/$USER')
    if cli_root:
        _store_root(wt, cli_root, global_)
    settings = load_settings(wt.top)
    if name is not None:
        _store_name(wt, name, settings)
        settings = load_settings(wt.top)

    # With --root, set up under that root now, whatever overrides it later.
    location = worktree.locate(wt, settings=settings, cli_root=cli_root)
    for rel in new_links:
        links.refuse_unlinkable(wt.top, location.scratch_dir, rel)
    for rel in new_links:
        links.record(rel, settings, global_=False, cwd=wt.top)
    if new_links:
        settings = load_settings(wt.top)
    info(f'scratch root: {location.root_real}  ({location.root.source})')
    if location.root.warning:
        warn(location.root.warning)
    if cli_root:
        for shadow in _shadowing_root(settings, global_):
            warn(f'{shadow} overrides the ckpt.root just recorded; unset it to use {location.root_real}')

    if pre_commit_config:
        _add_to_pre_commit_config(wt)
    elif hooks.uses_pre_commit_framework(wt):
        info(f'{C.PRE_COMMIT_CONFIG} found: the pre-commit framework owns the hook scripts; '
             'add this under its "repos:" instead (or rerun with --pre-commit-config):\n'
             + pre_commit_snippet())
    else:
        for result in hooks.install_all(wt):
            info(f'hook {result.name}: {result.action} ({result.path})')

    for entry in git.worktree_list(wt.top):
        if entry.bare or entry.prunable or not entry.path.is_dir():
            continue
        other = wt if entry.path == wt.top else worktree.current_worktree(entry.path)
        other_location = worktree.locate(other, settings=settings, cli_root=cli_root)
        created = worktree.create_scratch_dir(other_location)
        info(f'{"created" if created else "exists "} {other_location.scratch_dir}  <- {other.top}')
        for outcome in links.apply_all(other_location, settings):
            if outcome.error:
                warn(f'link not created: {outcome.error}')
            elif outcome.action != 'exists':
                target = other_location.scratch_dir / outcome.path
                info(f'  linked {outcome.path} -> {target}  ({outcome.action})')

    if ignore.update_gitignore(wt.top, extra_ignore_patterns(settings)):
        info(f'updated the git-ckpt block in {wt.top / ".gitignore"}')
    info(f'this worktree\'s scratch dir: {location.scratch_dir}')
    return 0


def _add_to_pre_commit_config(wt: worktree.Worktree) -> None:
    """`init --pre-commit-config`: our entry goes into the file; the framework
    then owns the hook scripts, so no native hooks are installed."""
    from git_ckpt import precommit_config
    path = wt.top / C.PRE_COMMIT_CONFIG
    if precommit_config.update_file(path):
        info(f'added git-ckpt\'s hooks to {path}; now run: {precommit_config.install_command()}')
    else:
        info(f'{path} already has git-ckpt\'s hooks')


def _shadowing_root(settings, global_: bool) -> list[str]:
    """What would keep later commands from using the root `init --root` just
    recorded: GIT_CKPT_ROOT in this environment, or (for --global) a
    repository-level ckpt.root."""
    out = []
    if os.environ.get(C.ENV_ROOT):
        out.append(f'{C.ENV_ROOT}={os.environ[C.ENV_ROOT]} (set in your environment)')
    configured = settings.get(C.CONFIG_ROOT)
    if global_ and configured and configured[1] in ('local', 'worktree'):
        out.append(f'{C.CONFIG_ROOT}={configured[0]} in this repository\'s git config')
    return out


def extra_ignore_patterns(settings) -> list[str]:
    """Ignore lines beyond the fixed ones: one per worktree link."""
    return links.ignore_patterns(settings)


def uninstall() -> int:
    wt = worktree.current_worktree()
    for result in hooks.uninstall_all(wt):
        info(f'hook {result.name}: {result.action} ({result.path})')
    info('scratch dirs, git config and the .gitignore block are left as they are')
    return 0
