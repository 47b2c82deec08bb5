"""The message of a blocked commit: what, why, and the exact commands to fix it.

Offenders are grouped (one line for `out/checkpoint-500/`, not one per file),
each with its reason; then commands to paste: unstage (`git rm -r --cached`),
ignore, or allow on purpose, and the one-off `git commit --no-verify`.
Every path in a command is shell-quoted and, where git or .gitignore would
read it as a pattern, escaped.  Standard library only (hook path).
"""
from __future__ import annotations

from git_ckpt import constants as C
from git_ckpt.output import human_size
from git_ckpt.records import record

MAX_GROUPS_SHOWN = 30

REASONS = {
    'dir': 'a training checkpoint dir ({detail}): optimizer state and weights, gigabytes per step',
    'weights': 'model weights or training state ({detail}): belongs on scratch or in a model hub',
    'size': 'staged blob is {size}, over the {limit} limit (git config {key})',
    'symlink': 'symlink into the scratch root (-> {detail}): it dangles in every other clone',
    'in-root': 'inside the scratch root, which sits inside this repository',
}


class Group(record('Group', 'key kind detail paths size ignore')):
    """key: a dir ending in '/' or a single path; paths: the offending paths
    in it; size: their staged sizes summed."""
    __slots__ = ()


def group_offences(offences) -> list[Group]:
    """Offences of one kind in one directory become one group: the checkpoint
    dir itself for 'dir'/'in-root', the parent dir for per-file kinds."""
    groups: dict[tuple[str, str], Group] = {}
    for o in offences:
        key = o.group
        if o.kind not in ('dir', 'in-root'):
            parent = o.path.rpartition('/')[0]
            key = parent + '/' if parent else ''
        # Different weight names in one dir stay apart: each has its own ignore line.
        gkey = (o.kind, key, o.detail if o.kind == 'weights' else '')
        g = groups.get(gkey) or Group(key, o.kind, o.detail, [], 0, o.ignore)
        g.paths.append(o.path)
        groups[gkey] = g._replace(size=g.size + (o.size or 0))
    out = []
    for g in groups.values():
        if g.kind not in ('dir', 'in-root') and len(g.paths) == 1:
            g = g._replace(key=g.paths[0])
        out.append(g)
    return sorted(out, key=lambda g: g.key)


def display(path: str) -> str:
    """A path on one line: control characters shown as escapes, like git does."""
    if path.isprintable():
        return path
    return ''.join(ch if ch.isprintable() else _escape(ch) for ch in path)


def _escape(ch: str) -> str:
    if 0xdc80 <= ord(ch) <= 0xdcff:   # a non-UTF-8 byte, surrogate-escaped
        return f'\\x{ord(ch) - 0xdc00:02x}'
    return repr(ch)[1:-1]


def _one_line(pattern: str) -> str:
    # Neither .gitignore nor a git config value can hold a newline: `?` matches it.
    return ''.join('?' if ord(ch) < 32 or ord(ch) == 127 else ch for ch in pattern)


def gitignore_literal(path: str) -> str:
    """`path` as a .gitignore line matching exactly it, anchored at the top."""
    out = ''.join('\\' + ch if ch in '*?[\\' else ch for ch in path)
    stripped = out.rstrip(' ')
    out = stripped + '\\ ' * (len(out) - len(stripped))
    return _one_line('/' + out)


def allow_literal(path: str) -> str:
    """`path` as an allow pattern (fnmatch: brackets escape)."""
    return _one_line(''.join(f'[{ch}]' if ch in '*?[' else ch for ch in path))


def pathspec(path: str) -> str:
    """A path git reads literally (names with glob characters need the magic)."""
    return f':(literal){path}' if any(ch in path for ch in '*?[\\') or path.startswith(':') else path


def _describe(group: Group, policy) -> str:
    limit = human_size(policy.max_size) if policy.max_size else ''
    reason = REASONS[group.kind].format(
        detail=display(group.detail), size=human_size(group.size), limit=limit,
        key=C.CONFIG_MAX_FILE_SIZE)
    if group.kind == 'size' and len(group.paths) > 1:
        reason = f'staged blobs over the {limit} limit (git config {C.CONFIG_MAX_FILE_SIZE})'
    if group.kind == 'symlink' and len(group.paths) == 1:
        what = display(group.key)
    elif len(group.paths) == 1 and not group.key.endswith('/'):
        what = f'{display(group.key)} ({human_size(group.size)})'
    else:
        names = [display(p[len(group.key):]) for p in group.paths[:3]]
        more = ', ...' if len(group.paths) > 3 else ''
        what = (f'{display(group.key)} ({len(group.paths)} file{"s" if len(group.paths) > 1 else ""}, '
                f'{human_size(group.size)}: {", ".join(names)}{more})')
    return f'  {what}\n      {reason}'


def _rm_targets(group: Group) -> list[str]:
    if group.kind in ('dir', 'in-root') and group.key.endswith('/'):
        return [group.key]
    return list(group.paths)


def _allow_pattern(group: Group) -> str:
    if group.kind in ('dir', 'in-root') and group.key.endswith('/'):
        return allow_literal(group.key) + '*'
    if len(group.paths) == 1:
        return '/' + allow_literal(group.paths[0])  # '/': this path only, not the name anywhere
    return allow_literal(group.key) + group.detail if group.kind == 'weights' else allow_literal(group.key) + '*'


def _ignore_line(group: Group) -> str:
    if group.kind in ('size', 'symlink'):
        return gitignore_literal(group.paths[0]) if len(group.paths) == 1 else gitignore_literal(group.key)
    return group.ignore


def render(offences, policy, *, framework: bool = False, gitignore: str = '') -> str:
    """The whole message; `gitignore` is the top-level .gitignore's text, so
    lines already there are not suggested again."""
    groups = group_offences(offences)
    shown, hidden = groups[:MAX_GROUPS_SHOWN], groups[MAX_GROUPS_SHOWN:]
    n = len(offences)
    lines = [f'git-ckpt: commit blocked: {n} staged file{"s" if n != 1 else ""} would put '
             'checkpoints, weights or scratch data into history (every clone pays for them forever).',
             '']
    lines += [_describe(g, policy) for g in shown]
    if hidden:
        lines.append(f'  ... and {len(hidden)} more groups (git diff --cached --name-only lists them)')

    targets = [pathspec(t) for g in shown for t in _rm_targets(g)]
    present = set(gitignore.splitlines())
    wanted = list(dict.fromkeys(_ignore_line(g) for g in shown))
    ignores = [line for line in wanted if line not in present]
    allows = list(dict.fromkeys(_allow_pattern(g) for g in shown))
    lines += ['', 'Keep them out of the commit (the files stay on disk), and ignore them:',
              '  git rm -r --cached -- ' + ' '.join(shell_quote(t) for t in targets)]
    lines += [f'  echo {shell_quote(line)} >> .gitignore' for line in ignores]
    if len(ignores) < len(wanted):
        already = ' '.join(line for line in wanted if line in present)
        lines.append(f'  (.gitignore already has {already}: those files were added with git add -f)')
    lines.append('  (if git rm refuses because the staged content differs from both the file and HEAD, '
                 'add -f: with --cached only the index entry goes)')
    lines += ['', 'Or, if they belong in the repository, allow them (a reviewable setting; '
              '* crosses /, a pattern without / matches the file name):']
    if framework:
        lines.append(f'  in {C.PRE_COMMIT_CONFIG}, under id: {C.GUARD_HOOK_ID}:  args: ['
                     + ', '.join(f'--allow, {_yaml_quote(a)}' for a in allows) + ']')
    lines += [f'  git config --add {C.CONFIG_ALLOW} {shell_quote(a)}' for a in allows]
    if any(g.kind == 'size' for g in shown):
        lines.append(f'  (or raise the limit: git config {C.CONFIG_MAX_FILE_SIZE} 50M)')
    lines += ['', 'Or commit once without the guard:  git commit --no-verify']
    return '\n'.join(lines)


_SHELL_SAFE = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-')


def shell_quote(text: str) -> str:
    """shlex.quote(text), without importing shlex (and with it re) on the
    hook path: as is when every character is safe, else in single quotes."""
    if text and _SHELL_SAFE.issuperset(text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _yaml_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
