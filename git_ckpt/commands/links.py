"""`git ckpt link` and `git ckpt unlink`."""
from __future__ import annotations

from pathlib import Path

from git_ckpt import ignore, links, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.output import info, warn
from git_ckpt.settings import load_settings


def link(paths: tuple[str, ...], *, global_: bool) -> int:
    wt = worktree.current_worktree()
    settings = load_settings(wt.top)
    location = worktree.locate(wt, settings=settings)
    if paths:
        rels = [links.normalize(wt.top, p, Path.cwd()) for p in paths]
    else:
        rels = [links.check_relative(v) for v in links.configured(settings)]
        if not rels:
            raise GitCkptError('no links configured', 'name a directory: git ckpt link outputs')
    # Refuse every bad path before changing anything.
    for rel in rels:
        links.refuse_unlinkable(wt.top, location.scratch_dir, rel)
    worktree.create_scratch_dir(location)
    for rel in dict.fromkeys(rels):
        action = links.create(location, rel)
        links.record(rel, settings, global_=global_, cwd=wt.top)
        info(f'{rel} -> {location.scratch_dir / rel}  ({action})')
    if ignore.update_gitignore(wt.top, links.ignore_patterns(load_settings(wt.top))):
        info(f'updated the git-ckpt block in {wt.top / ".gitignore"}')
    return 0


def unlink(paths: tuple[str, ...], *, global_: bool) -> int:
    wt = worktree.current_worktree()
    location = worktree.locate(wt)
    rels = [links.normalize(wt.top, p, Path.cwd()) for p in paths]
    for rel in rels:
        if links.state(wt.top, location.scratch_dir, rel) not in (links.LINKED, links.STALE, links.MISSING):
            links.remove(location, rel)  # raises with the reason
    for rel in dict.fromkeys(rels):
        action = links.remove(location, rel)
        links.forget(rel, global_=global_, cwd=wt.top)
        info(f'{rel}: link {action}; its data stays in {location.scratch_dir / rel}')
    settings = load_settings(wt.top)
    for rel in rels:
        if rel in links.configured(settings):
            other = 'local' if global_ else 'global'
            warn(f'{rel} is still in the {other} git config, so new worktrees keep linking it; '
                 f'run git ckpt unlink{"" if global_ else " --global"} {rel}')
    if ignore.update_gitignore(wt.top, links.ignore_patterns(settings)):
        info(f'updated the git-ckpt block in {wt.top / ".gitignore"}')
    return 0
