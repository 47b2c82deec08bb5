"""Moving data already in the worktree (or the HF cache in home) to scratch.

Each move is planned first (nothing changes), then carried out by
transfer.py: a rename on the same filesystem, else copy + checksum verify +
delete exactly the verified source files.  A link is left where the data was.
Every step can be interrupted (kill -9, a full disk) and rerun; the plan
recognises where the last run stopped:
    source only (maybe a .partial next to dest)  -> MOVE (the copy resumes)
    source + dest with a verified manifest      -> FINISH (delete the source)
    dest only                                   -> LINK (only the link is missing)
    our link in place                           -> DONE
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import NamedTuple

from git_ckpt import constants as C
from git_ckpt import git, links, transfer, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.disk_usage import dir_size
from git_ckpt.scratch import check_owned_dir, ensure_private_dir
from git_ckpt.settings import Settings

MOVE, FINISH, LINK, DONE = 'move', 'finish', 'link', 'done'


class Plan(NamedTuple):
    label: str     # what the user named: a worktree path, or 'HF cache'
    src: Path      # the directory to empty (it becomes a link)
    dest: Path     # where its data goes
    action: str    # MOVE / FINISH / LINK / DONE
    method: str    # 'rename' or 'copy' for MOVE
    size: int      # bytes allocated under src (what its filesystem gets back)
    resuming: bool = False   # a .partial of an interrupted copy is there


class Moved(NamedTuple):
    plan: Plan
    files: int
    resumed: int   # files an interrupted copy had already verified
    freed: int     # bytes the source filesystem got back


class Candidate(NamedTuple):
    rel: str
    size: int
    reason: str


def _same_fs(a: Path, b: Path) -> bool:
    while not b.exists():
        b = b.parent
    return os.stat(a).st_dev == os.stat(b).st_dev


def _is_our_copy(src: Path, dest: Path) -> bool:
    manifest = transfer.read_manifest(dest)
    if manifest is None:
        return False
    return manifest.get('source') in (os.fspath(src), os.path.realpath(src))


def plan_move(label: str, src: Path, dest: Path) -> Plan:
    """What moving the real directory `src` to `dest` takes now (see module doc)."""
    partial = dest.with_name(dest.name + C.PARTIAL_SUFFIX)
    for ours in (dest, partial):
        if os.path.lexists(ours):
            # Linked to, read from (an interrupted copy) or replaced: only our own.
            check_owned_dir(ours)
    if not os.path.lexists(src):
        if dest.is_dir() and not dest.is_symlink():
            return Plan(label, src, dest, LINK, '', 0)
        raise GitCkptError(f'{src} does not exist', 'give an existing directory to migrate')
    if not src.is_dir() or src.is_symlink():
        raise GitCkptError(f'{src} is not a directory', 'migrate moves directories')
    if os.path.lexists(dest):
        if _is_our_copy(src, dest):
            return Plan(label, src, dest, FINISH, 'copy', dir_size(src))
        if not (dest.is_dir() and not dest.is_symlink() and not any(os.scandir(dest))):
            raise GitCkptError(f'{dest} already exists in scratch and holds other data',
                               f'move it away (or merge it into {src} by hand), then rerun')
    method = 'rename' if _same_fs(src, dest.parent) and not partial.exists() else 'copy'
    return Plan(label, src, dest, MOVE, method, dir_size(src), resuming=partial.exists())


def execute(plan: Plan, *, progress: bool | None = None, within: Path | None = None) -> Moved:
    """Carry out a MOVE or FINISH; the source is deleted only once verified,
    following no symlink between `within` (the worktree) and the source."""
    files = resumed = 0
    if plan.action == MOVE:
        if plan.dest.is_dir() and not plan.dest.is_symlink():
            os.rmdir(plan.dest)  # the empty target an earlier `link` made
        result = transfer.transfer(plan.src, plan.dest, delete_source=True, progress=progress, within=within)
        files, resumed, left = result.files, result.resumed, result.source_left
    elif plan.action == FINISH:
        # Verified when it was made, but a kill came before the delete: check
        # every byte again (it may have been changed or pruned since).
        problems = transfer.verify(plan.dest)
        if problems:
            shown = ', '.join(str(p) for p in problems[:3]) + (' ...' if len(problems) > 3 else '')
            raise GitCkptError(f'the copy in {plan.dest} no longer matches its manifest ({shown}); '
                               f'{plan.src} was not deleted',
                               f'move {plan.dest} away (keep what you need from it), then rerun')
        left = transfer.delete_verified(plan.src, plan.dest, within=within)
    else:
        left = []
    if left or os.path.lexists(plan.src) and plan.action in (MOVE, FINISH):
        shown = ', '.join(left[:3]) + (' ...' if len(left) > 3 else '')
        raise GitCkptError(
            f'{len(left)} item(s) in {plan.src} were not moved (changed during the copy, or not '
            f'regular files): {shown}',
            f'the verified copy is in {plan.dest}; move or delete those yourself, then rerun')
    if plan.dest.is_dir():
        os.chmod(plan.dest, C.DIR_MODE)
        try:
            os.unlink(plan.dest / C.TRANSFER_MANIFEST_NAME)  # its job (resume, verify) is done
        except FileNotFoundError:
            pass
    freed = plan.size if plan.action in (MOVE, FINISH) and plan.method == 'copy' else 0
    return Moved(plan, files, resumed, freed)


# --- worktree paths ---------------------------------------------------------

def plan_worktree_path(location, rel: str) -> Plan:
    top, scratch_dir = location.worktree.top, location.scratch_dir
    src, dest = top / rel, scratch_dir / rel
    state = links.state(top, scratch_dir, rel)
    if state == links.LINKED:
        return Plan(rel, src, dest, DONE, '', 0)
    if state == links.STALE:
        raise GitCkptError(f'{src} is a link into an old scratch root', f'git ckpt link {rel} (repoints it)')
    if state in (links.FILE, links.FOREIGN):
        links.refuse_unlinkable(top, scratch_dir, rel)  # raises with the reason
    tracked = git.tracked_files([rel], cwd=top) if state != links.MISSING else []
    if tracked:
        raise GitCkptError(f'{src} holds {len(tracked)} file(s) tracked by git (e.g. {tracked[0]})',
                           'migrate only untracked data: git rm --cached them first, or pick another dir')
    return plan_move(rel, src, dest)


def migrate_worktree_path(location, plan: Plan, settings: Settings, *, progress: bool | None = None) -> Moved:
    rel = plan.label
    moved = Moved(plan, 0, 0, 0)
    if plan.action != DONE:
        worktree.create_scratch_dir(location)
        ensure_private_dir(location.root_real, plan.dest.parent.relative_to(location.root_real))
        moved = execute(plan, progress=progress, within=location.worktree.top)
        links.create(location, rel)
    links.record(rel, settings, global_=False, cwd=location.worktree.top)
    return moved


def _tracked_tops(top: Path, names: list[str]) -> set[str]:
    return {path.split('/', 1)[0] for path in git.tracked_files(names, cwd=top)}


def find_candidates(location, settings: Settings) -> list[Candidate]:
    """Untracked, non-empty dirs in the worktree that belong on scratch."""
    top, scratch_dir = location.worktree.top, location.scratch_dir
    found: dict[str, str] = {}
    for value in links.configured(settings):
        try:
            rel = links.check_relative(value)
        except GitCkptError:
            continue
        if links.state(top, scratch_dir, rel) == links.DATA_DIR:
            found[rel] = 'configured link (ckpt.link) that is still a real dir'
    with os.scandir(top) as it:
        entries = sorted((e for e in it if e.name != '.git' and e.is_dir(follow_symlinks=False)),
                         key=lambda e: e.name)
    for entry in entries:
        if entry.name in found:
            continue
        if entry.name in C.MIGRATE_CANDIDATE_NAMES:
            found[entry.name] = 'written by ML tools'
        elif any(fnmatch.fnmatchcase(entry.name, g) for g in C.MIGRATE_CHECKPOINT_GLOBS):
            found[entry.name] = 'checkpoint dir'
        elif _holds_checkpoints(Path(entry.path)):
            found[entry.name] = 'holds checkpoint-* dirs'
    tracked = _tracked_tops(top, list(found))
    out = []
    for rel, reason in found.items():
        if rel.split('/', 1)[0] in tracked or links.state(top, scratch_dir, rel) != links.DATA_DIR:
            continue
        out.append(Candidate(rel, dir_size(top / rel), reason))
    return out


def _holds_checkpoints(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return any(e.is_dir(follow_symlinks=False) and fnmatch.fnmatchcase(e.name, 'checkpoint-*')
                       for e in it)
    except OSError:
        return False


# --- the Hugging Face cache -------------------------------------------------

def hf_cache_source(home: Path, environ=os.environ) -> Path:
    value = environ.get(C.ENV_HF_HOME)
    return Path(os.path.abspath(os.path.expanduser(value))) if value else home / '.cache' / 'huggingface'


def plan_hf_cache(root_real: Path, home: Path, environ=os.environ) -> Plan:
    src = hf_cache_source(home, environ)
    dest = root_real / C.HF_CACHE_DIR_NAME
    if os.path.realpath(src) == os.path.realpath(dest) and dest.is_dir():
        return Plan('HF cache', src, dest, DONE, '', 0)  # HF_HOME already points there
    if src.is_symlink():
        raise GitCkptError(f'{src} is a symlink to {os.readlink(src)}, not a cache git-ckpt can move',
                           f'move what it points to yourself, or unset {C.ENV_HF_HOME}')
    if not os.path.lexists(src) and not dest.is_dir():
        raise GitCkptError(f'there is no Hugging Face cache at {src}', 'nothing to migrate')
    if src.is_dir() and not _same_fs(src, home):
        # Already off the home filesystem (HF_HOME on scratch): moving it gains nothing.
        return Plan('HF cache', src, src, DONE, '', 0)
    return plan_move('HF cache', src, dest)


def migrate_hf_cache(root_real: Path, plan: Plan, *, progress: bool | None = None) -> Moved:
    moved = Moved(plan, 0, 0, 0)
    if plan.action != DONE:
        moved = execute(plan, progress=progress)
        plan.src.parent.mkdir(parents=True, exist_ok=True)
        # Tools that ignore HF_HOME still find the cache through the link.
        os.symlink(plan.dest, plan.src)
    return moved
