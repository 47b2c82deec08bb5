"""Worktree links: a directory in the worktree that is a symlink into scratch.

Tools that write next to the code (ART's .art/, unsloth_compiled_cache/,
lightning_logs/, wandb/, outputs/) never see TrainingArguments, so setup()
cannot redirect them.  A link makes `<worktree>/PATH` a symlink to
`<scratch dir>/PATH`: the tool writes where it always did, the bytes land on
scratch.  The list lives in git config `ckpt.link` (multi-valued, repository
or global) as paths relative to the worktree top, and the post-checkout hook
creates the links in every new worktree.

Standard library only (the post-checkout hook imports this module).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple

from git_ckpt import constants as C
from git_ckpt import git
from git_ckpt.errors import GitCkptError
from git_ckpt.scratch import ensure_private_dir, read_manifest
from git_ckpt.settings import Settings

# What is at a link's place in the worktree.
MISSING = 'missing'        # nothing: the link can be created
LINKED = 'linked'          # our symlink, pointing at this worktree's scratch dir
STALE = 'stale'            # our symlink, pointing at this worktree's dir under an older root
EMPTY_DIR = 'empty-dir'    # a real, empty directory: safe to replace
DATA_DIR = 'data-dir'      # a real directory with data: `git ckpt migrate` moves it
FILE = 'file'              # a file (or device, socket...): never touched
FOREIGN = 'foreign-link'   # a symlink somewhere else: never touched


def normalize(top: Path, path: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """PATH as typed (relative to cwd) -> the link's path relative to the
    worktree top, in posix form.  Refuses anything that is not strictly inside
    the worktree, including paths that reach outside through a symlinked parent."""
    cwd = Path.cwd() if cwd is None else cwd
    absolute = Path(os.path.abspath(os.path.join(cwd, os.path.expanduser(os.fspath(path)))))
    top_real = Path(os.path.realpath(top))
    candidate = Path(os.path.realpath(absolute.parent)) / absolute.name
    try:
        rel = candidate.relative_to(top_real)
    except ValueError:
        raise GitCkptError(f'{path} is outside the worktree {top}',
                           'give a directory inside this worktree, e.g. git ckpt link outputs')
    return check_relative(rel.as_posix(), what=os.fspath(path))


def check_relative(rel: str, *, what: str | None = None) -> str:
    """Validate a link path relative to the top (also used for config values,
    which a user may have edited by hand)."""
    what = rel if what is None else what
    parts = Path(rel).parts
    if not rel or os.path.isabs(rel) or not parts or parts == ('.',):
        raise GitCkptError(f'{what} is the worktree itself or not a relative path',
                           'give a directory inside the worktree, e.g. outputs')
    if '..' in parts:
        raise GitCkptError(f'{what} leaves the worktree (..)', 'give a directory inside the worktree')
    if parts[0] == '.git':
        raise GitCkptError(f'{what} is inside .git', 'give a directory of the working tree')
    return Path(rel).as_posix()


def configured(settings: Settings) -> list[str]:
    """The configured link paths (all scopes), without duplicates, in order."""
    out: list[str] = []
    for value in settings.get_all(C.CONFIG_LINK):
        value = value.strip().rstrip('/')
        if value and value not in out:
            out.append(value)
    return out


def ignore_pattern(rel: str) -> str:
    """The .gitignore line for a link: anchored, and WITHOUT a trailing slash,
    because git sees a symlink as a file, never as a directory."""
    escaped = ''.join('\\' + ch if ch in '\\*?[' else ch for ch in rel)
    if escaped.endswith(' '):
        escaped = escaped[:-1] + '\\ '
    return '/' + escaped


def ignore_patterns(settings: Settings) -> list[str]:
    return [ignore_pattern(rel) for rel in configured(settings)]


def _link_target(path: Path) -> Path:
    raw = os.readlink(path)
    return Path(os.path.normpath(os.path.join(path.parent, raw)))


def _owner_leaf(target: Path) -> str | None:
    """The managed scratch dir (by leaf name) that `target` lies in, if any."""
    for ancestor in target.parents:
        manifest = read_manifest(ancestor)
        if manifest is not None:
            return manifest.get('worktree_id')
    return None


def state(top: Path, scratch_dir: Path, rel: str) -> str:
    path = top / rel
    if path.is_symlink():
        target = _link_target(path)
        if target == scratch_dir / rel or os.path.realpath(target) == os.path.realpath(scratch_dir / rel):
            return LINKED
        # The same worktree's dir under a previous root (ckpt.root changed).
        if _owner_leaf(target) == scratch_dir.name:
            return STALE
        return FOREIGN
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                return DATA_DIR if any(True for _ in entries) else EMPTY_DIR
    except OSError as exc:
        raise GitCkptError(f'cannot read {path}: {exc.strerror}', 'check its permissions')
    return FILE if os.path.lexists(path) else MISSING


def refuse_unlinkable(top: Path, scratch_dir: Path, rel: str) -> str:
    """The state at `rel`, or raise when `link` must not touch it."""
    path = top / rel
    current = state(top, scratch_dir, rel)
    if current == FILE:
        raise GitCkptError(f'{path} is a file, not a directory',
                           'links are for directories; move the file away or link another path')
    if current == FOREIGN:
        raise GitCkptError(f'{path} is already a symlink to {os.readlink(path)}',
                           f'remove the symlink (rm {rel}) if git-ckpt should manage it')
    if current == DATA_DIR:
        raise GitCkptError(f'{path} is a directory with data in it',
                           f'move it to scratch and link it with: git ckpt migrate {rel}')
    return current


def create(location, rel: str) -> str:
    """Make `<top>/rel` a link to `<scratch dir>/rel`; return what was done.

    `location` is a worktree.Location whose scratch dir exists.  The target
    dir is created 0700 like every dir under the root.
    """
    top = location.worktree.top
    scratch_dir = location.scratch_dir
    current = refuse_unlinkable(top, scratch_dir, rel)
    target = ensure_private_dir(location.root_real, scratch_dir.relative_to(location.root_real) / rel)
    path = top / rel
    if current == LINKED:
        return 'exists'
    if current == EMPTY_DIR:
        os.rmdir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Via a temporary name and rename, so a stale link is replaced atomically
    # and a concurrent creator never sees a half-made state.
    tmp = path.with_name(f'.{path.name}.git-ckpt-link.{os.getpid()}')
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    try:
        if current == MISSING and os.path.lexists(path):
            raise GitCkptError(f'{path} appeared while linking', 'run the command again')
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return {MISSING: 'created', EMPTY_DIR: 'replaced empty dir', STALE: 'repointed'}[current]


def remove(location, rel: str) -> str:
    """Remove our link at `rel` (the data stays in scratch); refuse anything else."""
    top = location.worktree.top
    path = top / rel
    current = state(top, location.scratch_dir, rel)
    if current == MISSING:
        return 'absent'
    if current not in (LINKED, STALE):
        kind = f'a symlink to {os.readlink(path)}' if current == FOREIGN else (
            'a file' if current == FILE else 'a real directory')
        raise GitCkptError(f'{path} is not a git-ckpt link (it is {kind})',
                           'nothing removed; leave it or remove it by hand')
    os.unlink(path)
    return 'removed'


def scope_values(settings: Settings, scope: str) -> list[str]:
    key = C.CONFIG_LINK.lower()
    return [v for s, k, v in settings.entries if k == key and s == scope]


def record(rel: str, settings: Settings, *, global_: bool, cwd: Path) -> bool:
    """Add `rel` to ckpt.link (no duplicates); True when added."""
    scope = 'global' if global_ else 'local'
    if rel in scope_values(settings, scope):
        return False
    git.config_set(C.CONFIG_LINK, rel, scope=scope, add=True, cwd=cwd)
    return True


def forget(rel: str, *, global_: bool, cwd: Path) -> None:
    git.config_unset(C.CONFIG_LINK, scope='global' if global_ else 'local',
                     value_pattern=rel, fixed_value=True, cwd=cwd)


class Outcome(NamedTuple):
    path: str            # the configured value
    action: str | None   # what create() did, or None when it failed
    error: str | None    # why it failed


def apply_all(location, settings: Settings) -> list[Outcome]:
    """Create every configured link in one worktree; a failure is reported in
    its Outcome instead of raised, so one bad path blocks no other."""
    results = []
    for value in configured(settings):
        try:
            results.append(Outcome(value, create(location, check_relative(value)), None))
        except GitCkptError as exc:
            results.append(Outcome(value, None, str(exc)))
    return results


def post_checkout(location) -> None:
    """The post-checkout step: link the configured paths in a new worktree."""
    from git_ckpt.settings import load_settings
    for outcome in apply_all(location, load_settings(location.worktree.top)):
        if outcome.error:
            print(f'git-ckpt: warning: link not created: {outcome.error}', file=sys.stderr)
        elif outcome.action != 'exists':
            target = location.scratch_dir / outcome.path
            print(f'git-ckpt: linked {outcome.path} -> {target}', file=sys.stderr)
