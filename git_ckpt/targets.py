"""What the lifecycle commands (archive, restore, remove, gc) act on:
a worktree named on the command line, its scratch dir, the orphans, and
the one question asked on a terminal."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from git_ckpt import git, identity, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.output import human_size
from git_ckpt.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see git.py)
if TYPE_CHECKING:
    from git_ckpt import inventory  # for annotations; `archive` needs none of it


def resolve_worktree(arg: str | None, here: worktree.Worktree) -> worktree.Worktree:
    """WORKTREE as typed (a path, or the dir name of one worktree), as a
    worktree of the repository we are in; the current one when None."""
    if arg is None:
        return here
    entries = [e for e in git.worktree_list(here.top) if not e.bare]
    path = Path(os.path.abspath(os.path.expanduser(arg)))
    real = os.path.realpath(path)
    matches = [e for e in entries if os.path.realpath(e.path) == real]
    if not matches and '/' not in arg:
        matches = [e for e in entries if e.path.name == arg]
        if len(matches) > 1:
            raise GitCkptError(f'{arg} names {len(matches)} worktrees',
                               'give its path (see git worktree list)')
    if not matches:
        other = _other_repository(path)
        if other is not None and os.path.realpath(other) != os.path.realpath(here.common_dir):
            raise GitCkptError(f'{arg} is a worktree of another repository ({other})',
                               'run git ckpt from that repository')
        raise GitCkptError(f'{arg} is not a worktree of {identity.default_project_name(here.common_dir)} '
                           f'({here.common_dir})', 'list its worktrees with: git worktree list')
    entry = matches[0]
    if entry.prunable or not entry.path.is_dir():
        raise GitCkptError(f'the worktree directory {entry.path} is gone',
                           'run git worktree prune, then git ckpt gc for its scratch dir')
    return worktree.current_worktree(entry.path)


def _other_repository(path: Path) -> Path | None:
    if not path.is_dir():
        return None
    try:
        return git.repo_paths(path).common_dir
    except GitCkptError:
        return None


class Orphan(record('Orphan', 'scratch_dir manifest')):
    __slots__ = ()


def orphans(project_dir: Path, common_dir: Path) -> list[Orphan]:
    return [Orphan(e.scratch_dir, e.manifest) for e in worktree.scratch_entries(project_dir, common_dir)
            if e.is_orphan]


def plural(n: int, word: str) -> str:
    return f'{n} {word}{"" if n == 1 else "s"}'


def summary(inv: inventory.ScratchInventory) -> str:
    """'3.2G, 4 checkpoints in 2 runs'."""
    runs = len([r for r in inv.runs if r.checkpoints])
    text = f'{human_size(inv.size)}, {plural(len(inv.checkpoints), "checkpoint")}'
    return text + (f' in {plural(runs, "run")}' if runs else '')


def describe_lines(inv: inventory.ScratchInventory) -> list[str]:
    """One line per run: its checkpoints, latest and best."""
    lines = []
    for run in inv.runs:
        if not run.checkpoints:
            continue
        rel = os.path.relpath(run.path, inv.scratch_dir)
        latest = run.latest.name if run.latest else '-'
        best = f', best {run.best.name}' if run.best else ''
        lines.append(f'  {rel}: {plural(len(run.checkpoints), "checkpoint")}, {human_size(run.size)}, '
                     f'latest {latest}{best}')
    return lines


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


CHOICES = {'a': 'archive', 'd': 'delete', 'k': 'keep', 'c': 'cancel'}


def ask_action(question: str) -> str:
    """Ask [a]rchive / [d]elete / [k]eep / [c]ancel on the terminal."""
    import click
    answer = click.prompt(f'{question} [a]rchive / [d]elete / [k]eep / [c]ancel',
                          type=click.Choice(list(CHOICES) + list(CHOICES.values()), case_sensitive=False),
                          show_choices=False)
    answer = answer.lower()
    return CHOICES.get(answer, answer)


def confirm(question: str) -> bool:
    import click
    return click.confirm(question, default=False)
