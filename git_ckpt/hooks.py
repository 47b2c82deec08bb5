"""Installing and removing git-ckpt's git hooks.

The scripts live once, in the top-level hooks/ dir (shipped in the wheel as
git_ckpt/hooks/).  Installing copies them with one line filled in: the
interpreter that installed git-ckpt, so hooks work when that virtualenv is not
active (git GUIs, IDEs); the scripts fall back to `git-ckpt` on PATH.
A foreign hook already in place is kept under `<name>.pre-git-ckpt` and run
first by ours; `uninstall` puts it back.
"""
from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path
from typing import NamedTuple

from git_ckpt import constants as C
from git_ckpt import git
from git_ckpt.errors import GitCkptError
from git_ckpt.worktree import Worktree


def hooks_source_dir() -> Path:
    """Where the hook scripts are: inside the wheel, or this checkout's hooks/."""
    packaged = Path(__file__).resolve().parent / 'hooks'
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / 'hooks'


def hooks_dir(worktree: Worktree) -> Path:
    """core.hooksPath when set (relative to the worktree top), else the common
    hooks dir that every worktree of the repository shares."""
    configured = git.config_get('core.hooksPath', cwd=worktree.top)
    if configured:
        path = Path(os.path.expanduser(configured))
        return path if path.is_absolute() else worktree.top / path
    return worktree.common_dir / 'hooks'


def uses_pre_commit_framework(worktree: Worktree) -> bool:
    return (worktree.top / C.PRE_COMMIT_CONFIG).is_file()


def is_ours(path: Path) -> bool:
    try:
        with open(path, 'rb') as f:
            return C.HOOK_MARKER.encode() in f.read(4096)
    except OSError:
        return False


def package_parent_dir() -> str:
    """The directory `import git_ckpt` finds this package in."""
    return os.fspath(Path(__file__).resolve().parent.parent)


def render_hook(name: str, python: str = sys.executable) -> str:
    """The template with its INSTALL_PYTHON line (and, in the pre-commit shim,
    its INSTALL_PATH line) filled in."""
    template = (hooks_source_dir() / name).read_text(encoding='utf-8')
    lines = template.splitlines(keepends=True)
    values = {C.HOOK_PYTHON_LINE: python, C.HOOK_PACKAGE_PATH_LINE: package_parent_dir()}
    filled = set()
    for i, line in enumerate(lines):
        for prefix, value in values.items():
            if line.startswith(prefix) and prefix not in filled:
                lines[i] = f'{prefix}{shlex.quote(value)}\n'
                filled.add(prefix)
    if C.HOOK_PYTHON_LINE not in filled:  # pragma: no cover - guarded by tests of every shipped hook
        raise AssertionError(f'hook template {name} has no {C.HOOK_PYTHON_LINE} line')
    return ''.join(lines)


class HookResult(NamedTuple):
    name: str
    path: Path
    action: str   # installed / updated / chained / unchanged / removed / restored / absent / skipped


def install_hook(directory: Path, name: str, python: str = sys.executable) -> HookResult:
    target = directory / name
    chained = directory / f'{name}{C.CHAINED_SUFFIX}'
    content = render_hook(name, python)
    action = 'installed'
    if target.is_symlink() or target.exists():
        if is_ours(target):
            if target.read_text(encoding='utf-8', errors='replace') == content:
                return HookResult(name, target, 'unchanged')
            action = 'updated'
        elif chained.exists() or chained.is_symlink():
            raise GitCkptError(
                f'{target} is a foreign hook and {chained.name} already holds another one',
                'merge them by hand, then run git ckpt init again')
        else:
            os.rename(target, chained)
            action = 'chained'
    tmp = directory / f'.{name}.git-ckpt-tmp'
    tmp.write_text(content, encoding='utf-8')
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return HookResult(name, target, action)


def uninstall_hook(directory: Path, name: str) -> HookResult:
    target = directory / name
    chained = directory / f'{name}{C.CHAINED_SUFFIX}'
    present = target.exists() or target.is_symlink()
    if present and not is_ours(target):
        return HookResult(name, target, 'absent')  # someone else's hook: not ours to touch
    if present:
        target.unlink()
    if chained.exists() or chained.is_symlink():
        # Also when ours was deleted by hand: the displaced hook goes back.
        os.rename(chained, target)
        return HookResult(name, target, 'restored')
    return HookResult(name, target, 'removed' if present else 'absent')


def install_all(worktree: Worktree, python: str = sys.executable) -> list[HookResult]:
    directory = hooks_dir(worktree)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GitCkptError(f'cannot create hooks dir {directory}: {exc.strerror}',
                           'check core.hooksPath and its permissions')
    return [install_hook(directory, name, python) for name in C.HOOK_NAMES]


def uninstall_all(worktree: Worktree) -> list[HookResult]:
    directory = hooks_dir(worktree)
    return [uninstall_hook(directory, name) for name in C.HOOK_NAMES]


def hook_is_executable(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode) and os.access(path, os.X_OK)
    except OSError:
        return False


def hook_line(path: Path, prefix: str) -> str:
    """The value `git ckpt init` wrote on an installed hook's `prefix` line
    (INSTALL_PYTHON=, INSTALL_PATH=); '' if none."""
    try:
        text = path.read_text(encoding='utf-8', errors='replace')
    except OSError:
        return ''
    for line in text.splitlines():
        if line.startswith(prefix):
            words = shlex.split(line[len(prefix):])
            return words[0] if words else ''
    return ''


def hook_python(path: Path) -> str:
    """The INSTALL_PYTHON value written into an installed hook ('' if none)."""
    return hook_line(path, C.HOOK_PYTHON_LINE)


def hook_probe(path: Path, python: str) -> list[str]:
    """The command that asks for the version exactly the way the hook starts
    git-ckpt: the pre-commit shim's own `python -S` launcher with its
    INSTALL_PATH (read from the installed file), else `python -m git_ckpt`."""
    try:
        text = path.read_text(encoding='utf-8', errors='replace')
    except OSError:
        text = ''
    start = text.find(C.HOOK_LAUNCHER_START)
    end = text.find(C.HOOK_LAUNCHER_END, start + 1)
    if start < 0 or end < 0:
        return [python, '-m', 'git_ckpt', '--version']
    launcher = text[start + len(C.HOOK_LAUNCHER_START):end]
    return [python, '-S', '-c', launcher, hook_line(path, C.HOOK_PACKAGE_PATH_LINE), '--version']
