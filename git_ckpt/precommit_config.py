"""git-ckpt's entry in a .pre-commit-config.yaml: the snippet, and adding it.

The entry points at this project's .pre-commit-hooks.yaml (the manifest):
repo URL, the release tag of the running version, and both hook ids.  Adding
it is a text-level edit, not a YAML round trip, so the user's comments,
ordering and quoting survive; running it twice changes nothing.
"""
from __future__ import annotations

import re
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError

_REPOS_RE = re.compile(r'^repos\s*:\s*(?P<rest>.*?)\s*$')
_ITEM_RE = re.compile(r'^(?P<indent>\s*)-\s')
_HOOK_TYPES_RE = re.compile(r'^default_install_hook_types\s*:')


def repo_entry(indent: str = '  ') -> list[str]:
    """Our item of the `repos:` list, as lines, its dash at `indent`."""
    inner = indent + '  '
    return [
        f'{indent}- repo: {C.PRE_COMMIT_REPO_URL}',
        f'{inner}rev: v{C.VERSION}',
        f'{inner}hooks:',
        f'{inner}  - id: {C.GUARD_HOOK_ID}',
        f'{inner}    # args: [--allow, \'tests/fixtures/*.safetensors\']',
        f'{inner}  - id: {C.POST_CHECKOUT_HOOK_ID}',
    ]


def install_command() -> str:
    return 'pre-commit install ' + ' '.join(f'-t {t}' for t in C.PRE_COMMIT_HOOK_TYPES)


def snippet() -> str:
    """What to paste under `repos:`, and the install command."""
    return ('\n'.join(repo_entry()) + '\n'
            f'then run: {install_command()}  (post-checkout is not installed by default)')


def has_entry(text: str) -> bool:
    return re.search(rf'^\s*-?\s*id\s*:\s*[\'"]?{re.escape(C.GUARD_HOOK_ID)}\b', text, re.M) is not None


def add_entry(text: str) -> str:
    """`text` with our entry appended to `repos:` (and the hook types declared
    when the file declares none).  Unchanged when the entry is already there."""
    if has_entry(text):
        return text
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _REPOS_RE.match(line)), None)
    if start is None:
        body = lines + ([''] if lines and lines[-1].strip() else []) + ['repos:'] + repo_entry()
    else:
        rest = _REPOS_RE.match(lines[start]).group('rest')
        if rest.split('#')[0].strip() in ('[]',):
            lines[start] = 'repos:'
            rest = ''
        if rest and not rest.startswith('#'):
            raise GitCkptError(
                f'{C.PRE_COMMIT_CONFIG} writes `repos:` as a flow list, which git-ckpt does not edit',
                'paste the snippet that `git ckpt init` prints (without --pre-commit-config) by hand')
        indent, end = _block_end(lines, start)
        body = lines[:end] + repo_entry(indent) + lines[end:]
    if not any(_HOOK_TYPES_RE.match(line) for line in body):
        # So that a plain `pre-commit install` also installs post-checkout.
        types = ', '.join(C.PRE_COMMIT_HOOK_TYPES)
        at = next(i for i, line in enumerate(body) if _REPOS_RE.match(line))
        body.insert(at, f'default_install_hook_types: [{types}]  # added by git ckpt init')
    return '\n'.join(body) + '\n'


def _block_end(lines: list[str], start: int) -> tuple[str, int]:
    """(dash indent of the list items, index after the last line of the list)."""
    indent = None
    end = start + 1
    for i in range(start + 1, len(lines)):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            continue
        width = len(line) - len(line.lstrip())
        if indent is None:
            m = _ITEM_RE.match(line)
            if stripped.startswith('#'):
                continue
            if not m:
                break
            indent = m.group('indent')
        if width < len(indent) or (width == len(indent) and not stripped.startswith('-')):
            if stripped.startswith('#') and width == len(indent) and indent:
                end = i + 1   # a comment at item level still belongs to the list
                continue
            break
        end = i + 1
    return (indent if indent is not None else '  '), end


def update_file(path: Path) -> bool:
    """Add our entry to the config file (created when missing); True if changed."""
    try:
        old = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        old = ''
    new = add_entry(old)
    if new == old:
        return False
    tmp = path.with_name(f'.{path.name}.git-ckpt-tmp')
    tmp.write_text(new, encoding='utf-8')
    tmp.replace(path)
    return True
