"""`git ckpt status`: every worktree's scratch dir, and the orphans, in one table."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import git, inventory, scratch, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.inventory_workers import scan_many
from git_ckpt.output import warn
from git_ckpt.records import Fields
from git_ckpt.settings import load_settings, resolve_root

STATE_OK = 'ok'
STATE_ORPHANED = 'orphaned'
STATE_NO_DIR = 'no dir'
STATE_IN_PROGRESS = 'in progress'


class Row(Fields):
    _fields = ('project', 'worktree', 'removed_path', 'branch', 'scratch_dir', 'state', 'inventory', 'problems')

    def __init__(self, project: str | None, worktree: Path | None, removed_path: str | None, branch: str | None,
                 scratch_dir: Path | None, state: str, inventory: inventory.ScratchInventory | None = None,
                 problems: list[str] | None = None) -> None:
        self.project = project            # the project dir's name under the root
        self.worktree = worktree          # current path; None for an orphan
        self.removed_path = removed_path  # an orphan's old worktree path (from its manifest)
        self.branch = branch
        self.scratch_dir = scratch_dir
        self.state = state
        self.inventory = inventory
        self.problems = [] if problems is None else problems

    @property
    def size(self) -> int:
        return self.inventory.size if self.inventory else 0


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


def rows_for_repo(project_dir: Path, common_dir: Path | None) -> list[Row]:
    """Rows for every worktree git lists, then every orphaned scratch dir, not
    scanned yet (see scan_rows).

    `common_dir` None means the repository is gone: every dir is an orphan.
    """
    entries = worktree.scratch_entries(project_dir, common_dir) if common_dir else [
        worktree.ScratchEntry(d, m, None, None) for d, m in scratch.iter_managed_dirs(project_dir)]
    by_path = {_real(e.worktree_path): e for e in entries if e.worktree_path is not None}
    rows = []
    listed = []
    if common_dir is not None and common_dir.is_dir():
        try:
            listed = git.worktree_list(cwd=common_dir)
        except GitCkptError as exc:
            rows.append(Row(project_dir.name, None, None, None, None, STATE_NO_DIR, problems=[str(exc)]))
    used = set()
    for wt in listed:
        if wt.bare:
            continue
        entry = by_path.get(_real(wt.path))
        if entry is None:
            rows.append(Row(project_dir.name, wt.path, None, wt.branch, None, STATE_NO_DIR))
            continue
        used.add(entry.scratch_dir)
        rows.append(_row(project_dir.name, wt.path, None, wt.branch, entry.scratch_dir))
        if wt.prunable or not wt.path.is_dir():
            # Deleted by hand: git still has it, so its scratch dir is no orphan yet.
            rows[-1].problems.append(f'the worktree dir {wt.path} is gone; to free {entry.scratch_dir}: '
                                     'git worktree prune, then git ckpt gc')
    for entry in entries:
        if entry.scratch_dir in used:
            continue
        if entry.is_orphan:
            old = entry.manifest.get('worktree')
            rows.append(_row(project_dir.name, None, str(old) if old else '?', entry.manifest.get('branch'),
                             entry.scratch_dir, orphan=True))
        else:  # alive but not listed (git lists it under another spelling of its path)
            rows.append(_row(project_dir.name, entry.worktree_path, None, entry.manifest.get('branch'),
                             entry.scratch_dir))
    return rows


def _row(project: str, wt_path: Path | None, removed: str | None, branch: str | None,
         scratch_dir: Path, orphan: bool = False) -> Row:
    return Row(project, wt_path, removed, branch, scratch_dir, STATE_ORPHANED if orphan else STATE_OK)


def scan_rows(rows: list[Row], now: float) -> None:
    """Scan every row's scratch dir (all at once: the scans run in parallel
    worker processes) and set its inventory, problems and state."""
    pending = [row for row in rows if row.scratch_dir is not None and row.inventory is None]
    for row, inv in zip(pending, scan_many([row.scratch_dir for row in pending])):
        row.inventory = inv
        row.problems.extend(inv.problems)
        if row.state == STATE_ORPHANED:
            continue
        if not inv.exists:
            row.state = STATE_NO_DIR
        elif inv.in_progress(now):
            row.state = STATE_IN_PROGRESS
        else:
            row.state = STATE_OK


def _free_space(root: Path) -> tuple[int | None, int | None]:
    try:
        st = os.statvfs(root)
    except OSError:
        return None, None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def collect(all_: bool, cli_root: str | None) -> tuple[Path, list[Row], list[str]]:
    """(root, rows, problems) for this repository, or every repository with --all."""
    now = time.time()
    problems: list[str] = []
    if all_:
        root_choice = resolve_root(cli_root, load_settings())
        root = Path(os.path.realpath(root_choice.path))
        if not root.is_dir():
            raise GitCkptError(f'scratch root {root_choice.path} does not exist',
                               f'check {C.CONFIG_ROOT} / {C.ENV_ROOT} (or create it)')
        rows = []
        for project_dir in scratch.iter_project_dirs(root):
            manifest = scratch.read_json(project_dir / C.REPO_MANIFEST_NAME) or {}
            repo = manifest.get('repo')
            common_dir = Path(repo) if isinstance(repo, str) and os.path.isdir(repo) else None
            rows.extend(rows_for_repo(project_dir, common_dir))
        scan_rows(rows, now)
        return root, rows, problems
    wt = worktree.current_worktree()
    try:
        location = worktree.locate(wt, cli_root=cli_root)
    except GitCkptError as exc:
        # The root vanished or became unusable: still show the worktrees, and say why.
        rows = [Row(None, e.path, None, e.branch, None, STATE_NO_DIR)
                for e in git.worktree_list(cwd=wt.top) if not e.bare]
        return resolve_root(cli_root, load_settings(wt.top)).path, rows, [str(exc)]
    rows = rows_for_repo(location.project_dir, wt.common_dir)
    scan_rows(rows, now)
    if not location.project_dir.is_dir():
        problems.append(f'{location.project_dir} does not exist yet (run git ckpt init or git ckpt path)')
    return location.root_real, rows, problems


def status(*, all_: bool, as_json: bool, cli_root: str | None) -> int:
    from git_ckpt import status_render
    root, rows, problems = collect(all_, cli_root)
    free, total = _free_space(root)
    now = time.time()
    if as_json:
        status_render.print_json(root, rows, free, total, problems, now)
    else:
        status_render.print_table(root, rows, free, total, now, sys.stdout)
    for problem in problems + [p for row in rows for p in row.problems]:
        warn(problem)
    return 0
