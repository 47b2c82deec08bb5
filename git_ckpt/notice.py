"""The orphan notice: one stderr line, at most once a day per repository,
when scratch dirs of removed worktrees are still there.

Shown after git-ckpt commands and by the post-checkout hook.  The hook path
never walks sizes: it uses the sizes the last command-line check measured
(kept in the notice's state file) or gives the count only.  Standard library
only (the hook imports it).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.output import human_size
from git_ckpt.scratch import ensure_private_dir, read_json, write_json_atomic
from git_ckpt.settings import quiet


def _state_path(location, create: bool) -> Path:
    parent = ensure_private_dir(location.root_real, Path(C.STATE_DIR) / C.ORPHAN_NOTICE_STAMP, create=create)
    return parent / f'{location.project_dir.name}.json'


def orphan_notice(location, *, measure: bool, now: float | None = None) -> str | None:
    """The notice line for this repository, or None (no orphans, or shown
    within the last day).  Records that it was shown."""
    if quiet():
        return None
    now = time.time() if now is None else now
    state_path = _state_path(location, create=False)
    state = read_json(state_path) or {}
    if now - float(state.get('shown', 0)) < C.ORPHAN_NOTICE_INTERVAL:
        return None
    from git_ckpt.worktree import scratch_entries
    orphans = [e.scratch_dir for e in scratch_entries(location.project_dir, location.worktree.common_dir)
               if e.is_orphan]
    if not orphans:
        return None
    sizes = state.get('sizes') if isinstance(state.get('sizes'), dict) else {}
    if measure:
        from git_ckpt.disk_usage import dir_size
        sizes = {p.name: dir_size(p) for p in orphans}
    known = [sizes.get(p.name) for p in orphans]
    n = len(orphans)
    how_big = f' ({human_size(sum(known))})' if all(isinstance(s, int) for s in known) else ''
    write_json_atomic(_state_path(location, create=True), {'shown': now, 'sizes': sizes})
    return (f'git-ckpt: {n} scratch dir{"s" if n != 1 else ""}{how_big} of removed worktrees '
            f'{"are" if n != 1 else "is"} still on scratch; run `git ckpt gc` to archive or delete '
            f'{"them" if n != 1 else "it"}')


def after_command(cwd: str | None = None) -> None:
    """Print the notice after a git-ckpt command; never fails the command."""
    try:
        from git_ckpt import worktree
        from git_ckpt.settings import load_settings, resolve_root
        if os.environ.get(C.ENV_DIR):
            return  # a batch job without the repository
        wt = worktree.current_worktree(cwd)
        settings = load_settings(wt.top)
        if not resolve_root(None, settings).path.is_dir():
            return  # never create a root just to say there is nothing in it
        location = worktree.locate(wt, settings=settings)
        line = orphan_notice(location, measure=True)
    except Exception:
        return
    if line:
        print(line, file=sys.stderr)


def post_checkout(location) -> None:
    """POST_CHECKOUT_EXTRAS step: the notice, without a size walk."""
    try:
        line = orphan_notice(location, measure=False)
    except Exception:
        return  # a notice is never worth a warning on checkout
    if line:
        print(line, file=sys.stderr)


