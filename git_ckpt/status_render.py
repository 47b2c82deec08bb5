"""Rendering `git ckpt status`: a rich table on a TTY, plain text otherwise, or JSON.

The JSON schema (STATUS_JSON_SCHEMA) is documented in the README; add
fields, never rename or remove them without bumping the schema number.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.output import human_size, use_color

BAR_WIDTH = 20
HEADERS = ('worktree', 'branch', 'scratch dir', 'size', 'usage', 'ckpts', 'latest', 'state')


def age(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, span in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= span:
            return f'{seconds / span:.0f}{unit} ago'
    return f'{seconds:.0f}s ago'


def bar(size: int, biggest: int, full: str = '#', empty: str = '.') -> str:
    filled = round(BAR_WIDTH * size / biggest) if biggest else 0
    if size and not filled:
        filled = 1  # anything non-empty shows
    return full * filled + empty * (BAR_WIDTH - filled)


def _latest(row, now: float) -> str:
    latest = row.inventory.latest if row.inventory else None
    if latest is None:
        return '-'
    return f'{latest.step} ({age(now - latest.mtime)})'


def _worktree_cell(row) -> str:
    if row.worktree is not None:
        return os.fspath(row.worktree)
    return f'removed: {row.removed_path}'


def _cells(row, now: float, root: Path) -> list[str]:
    scratch_dir = '-'
    if row.scratch_dir is not None:
        try:
            scratch_dir = os.fspath(row.scratch_dir.relative_to(root))
        except ValueError:
            scratch_dir = os.fspath(row.scratch_dir)
    count = len(row.inventory.checkpoints) if row.inventory else 0
    size = human_size(row.size) if row.inventory and row.inventory.exists else '-'
    return [_worktree_cell(row), row.branch or '-', scratch_dir, size, '', str(count), _latest(row, now),
            row.state]


def _footer(rows, free: int | None, total: int | None) -> str:
    used = sum(r.size for r in rows)
    space = 'free space unknown' if free is None else f'{human_size(free)} free of {human_size(total)}'
    return f'total {human_size(used)} in {sum(1 for r in rows if r.inventory)} scratch dirs; {space}'


def print_table(root: Path, rows, free, total, now: float, stream=sys.stdout) -> None:
    biggest = max((r.size for r in rows), default=0)
    if stream.isatty():
        _print_rich(root, rows, free, total, now, biggest, stream)
        return
    table = [list(HEADERS)]
    for row in rows:
        cells = _cells(row, now, root)
        cells[4] = bar(row.size, biggest)
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS))]
    print(f'scratch root: {root}', file=stream)
    for cells in table:
        print('  '.join(c.ljust(w) for c, w in zip(cells, widths)).rstrip(), file=stream)
    print(_footer(rows, free, total), file=stream)


def _print_rich(root: Path, rows, free, total, now: float, biggest: int, stream) -> None:
    from rich.console import Console
    from rich.table import Table

    color = use_color(stream)
    console = Console(file=stream, no_color=not color, highlight=False)
    table = Table(title=f'scratch root: {root}', title_justify='left', caption=_footer(rows, free, total),
                  caption_justify='left')
    for header in HEADERS:
        table.add_column(header, justify='right' if header in ('size', 'ckpts') else 'left',
                         overflow='fold')
    styles = {'orphaned': 'yellow', 'no dir': 'dim', 'in progress': 'cyan', 'ok': 'green'}
    for row in rows:
        cells = _cells(row, now, root)
        cells[4] = bar(row.size, biggest, '█', '░')
        cells[7] = f'[{styles.get(row.state, "")}]{row.state}[/]' if color else row.state
        table.add_row(*cells)
    console.print(table)


def row_json(row, now: float) -> dict:
    inv = row.inventory
    latest = inv.latest if inv else None
    return {
        'project': row.project,
        'worktree': os.fspath(row.worktree) if row.worktree is not None else None,
        'removed_worktree': row.removed_path,
        'branch': row.branch,
        'scratch_dir': os.fspath(row.scratch_dir) if row.scratch_dir is not None else None,
        'state': row.state,
        'size': row.size,
        'checkpoints': len(inv.checkpoints) if inv else 0,
        'latest': None if latest is None else {
            'name': latest.name, 'step': latest.step, 'path': os.fspath(latest.path),
            'mtime': latest.mtime, 'age_seconds': round(now - latest.mtime, 3),
        },
        'newest_mtime': inv.newest_mtime if inv else None,
        'runs': [] if inv is None else [{
            'path': os.fspath(run.path),
            'size': run.size,
            'best': run.best.name if run.best else None,
            'checkpoints': [{
                'name': c.name, 'step': c.step, 'kind': c.kind, 'size': c.size, 'mtime': c.mtime,
                'complete': c.complete, 'in_progress': c.in_progress,
            } for c in run.checkpoints],
        } for run in inv.runs],
        'problems': list(row.problems),
    }


def print_json(root: Path, rows, free, total, problems, now: float, stream=sys.stdout) -> None:
    doc = {
        'schema': C.STATUS_JSON_SCHEMA,
        'root': os.fspath(root),
        'total_size': sum(r.size for r in rows),
        'free_bytes': free,
        'filesystem_bytes': total,
        'rows': [row_json(row, now) for row in rows],
        'problems': list(problems),
    }
    json.dump(doc, stream, indent=2)
    stream.write('\n')
