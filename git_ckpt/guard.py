"""The commit guard: keep checkpoints, weights and scratch links out of commits.

Runs as the pre-commit hook (native shim or the pre-commit framework), so it
imports only the standard library and needs a fixed number of git processes
whatever the number of staged files: `config` and `diff --cached` (run by the
native shim while Python starts, and piped in; the framework's hook runs
`config` and `ls-files` itself), `rev-parse` only when not run by git
(git.hook_top_and_common_dir) and, only when needed,
one `cat-file --batch-check` (sizes of blobs not stored loose) and one
`cat-file --batch` (symlink targets, possible Git LFS pointers).  A fresh
`git add` writes loose objects: their sizes are bounded by the object files'
own sizes, or read from the objects' headers, in process (loose_objects.py).

What is checked is the STAGED blob (size, mode, content), never the working
tree file: with partial staging (`git add -p`) the two differ.

It runs on every commit, so the common path costs as little as it can: no
`re` unless some path may match a pattern (a substring search over all paths
at once finds the few that may), no subprocess, pathlib or typing imports.
"""
from __future__ import annotations

import os
import sys

from git_ckpt import constants as C
from git_ckpt import git, git_index
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record

_MODE_SYMLINK = '120000'
_MODE_GITLINK = '160000'
_REGULAR_MODES = {'100644', '100755'}


class Offence(record('Offence', 'path kind group detail size ignore')):
    """kind: 'dir', 'weights', 'size', 'symlink', 'in-root'; group: what the
    message shows and `git rm` removes (a dir ending in '/', or the path);
    detail: the matched pattern, the link target, ...; size: the staged blob's
    size when known; ignore: the .gitignore line that keeps this out."""
    __slots__ = ()


class Policy(record('Policy', 'max_size allow root root_in_repo')):
    """max_size: bytes, 0 = no limit; allow: fnmatch patterns (`*` crosses
    `/`; no '/' = the file name); root: the scratch root as configured and
    real, () = unknown; root_in_repo: the root relative to the worktree top,
    when inside it."""
    __slots__ = ()


def parse_size(text: str, source: str) -> int:
    """'10M', '500k', '1.5G', '10MB', '2048' -> bytes (binary units, like git)."""
    import re
    m = re.fullmatch(r'\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*', text, re.IGNORECASE)
    if not m:
        raise GitCkptError(f'{source}={text!r} is not a size',
                           f'use bytes or a k/M/G suffix, e.g. git config {C.CONFIG_MAX_FILE_SIZE} 10M')
    factor = 1024 ** ' kmgt'.index((m.group(2) or ' ').lower())
    return int(float(m.group(1)) * factor)


def allow_matcher(patterns: tuple[str, ...]):
    """One compiled test for all allow patterns: a pattern with a '/' matches
    the whole path (`*` crosses '/'; a leading '/' only anchors it at the top),
    one without matches the file name in any directory."""
    if not patterns:
        return lambda path: False
    import fnmatch  # only with allow patterns: most repositories have none
    import re
    full = [fnmatch.translate(p.lstrip('/')) for p in patterns if '/' in p]
    base = [fnmatch.translate(p) for p in patterns if '/' not in p]
    full_re = re.compile('|'.join(full)) if full else None
    base_re = re.compile('|'.join(base)) if base else None

    def allowed(path: str) -> bool:
        return bool((full_re and full_re.match(path))
                    or (base_re and base_re.match(path.rpartition('/')[2])))
    return allowed


def is_lfs_pointer(content: bytes) -> bool:
    return (len(content) < C.LFS_POINTER_MAX_SIZE and content.startswith(C.LFS_POINTER_PREFIX)
            and b'\noid sha256:' in content and b'\nsize ' in content)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip('/') + '/') for r in roots)


def link_target_in_root(top: str, path: str, target: str, roots: tuple[str, ...]) -> bool:
    """Does a symlink at `path` (relative to `top`) with `target` point into the root?
    Checked both as written and with symlinks resolved (/scratch may be a link)."""
    joined = os.path.join(top, os.path.dirname(path), target)
    return _under(os.path.normpath(joined), roots) or _under(os.path.realpath(joined), roots)


class Sorted(record('Sorted', 'offences weights symlinks rest')):
    """The staged entries after the checks that need neither size nor content.
    offences: (IndexEntry, Offence) pairs blocked by path alone; weights: the
    same, blocked unless an LFS pointer; symlinks: IndexEntries whose target
    must be read; rest: indices into the Staged lists needing only the size check."""
    __slots__ = ()


def check_paths(staged: git_index.Staged, policy: Policy) -> Sorted:
    # Imported here, not at the top: run() has started git by then, and
    # imports while it works.
    from git_ckpt.guard_patterns import dir_match, may_match, weight_name
    paths, modes, oids = staged
    allowed = allow_matcher(policy.allow)
    maybe = may_match(paths, allowed if policy.allow else None) if paths else set()
    if not _REGULAR_MODES.issuperset(modes):  # symlinks, submodules
        maybe.update(i for i, mode in enumerate(modes) if mode not in _REGULAR_MODES)
    in_root = policy.root_in_repo
    if in_root is not None:
        maybe.update(i for i, path in enumerate(paths) if path == in_root or path.startswith(in_root + '/'))
    out = Sorted([], [], [], [])
    for i in sorted(maybe):
        entry = staged.entry(i)
        path = entry.path
        if entry.mode == _MODE_GITLINK or allowed(path):
            continue
        if in_root is not None and (path == in_root or path.startswith(in_root + '/')):
            out.offences.append((entry, Offence(path, 'in-root', in_root + '/', '', None, f'/{in_root}/')))
            continue
        m = dir_match(path)
        if m:
            index, end = m
            group = path[:end] + '/' if end < len(path) else path
            _, label, ignore = C.GUARD_DIR_PATTERNS[index - 1]
            out.offences.append((entry, Offence(path, 'dir', group, label, None,
                                                ignore if end < len(path) else ignore.rstrip('/'))))
        elif entry.mode == _MODE_SYMLINK:
            if policy.root:
                out.symlinks.append(entry)
        else:
            name = weight_name(path.lower().rpartition('/')[2])
            if name:
                out.weights.append((entry, Offence(path, 'weights', path, name, None, name)))
            elif entry.oid:
                out.rest.append(i)
    # Everything else: only the size check (an oid of '' is a file not in the index).
    if maybe or '' in oids:
        out.rest.extend([i for i, oid in enumerate(oids) if oid and i not in maybe])
    else:
        out.rest.extend(range(len(oids)))
    return out


def check(staged: git_index.Staged, policy: Policy, top: str, objects_dir: str | None = None) -> list[Offence]:
    """Every offence among the `staged` entries, in path order.  `objects_dir`:
    where the staged blobs are stored loose (read directly; else cat-file)."""
    # Exact sizes for what the message shows or the LFS test needs; for the
    # rest only "over the limit?" matters, and a loose object's file size
    # bounds that (loose_objects.start_maybe_over): one stat instead of a
    # read.  Started before the path checks, for every staged blob: with
    # thousands, a forked child stats half of them meanwhile.
    wait_unproven = None
    if policy.max_size and objects_dir is not None and staged.oids:
        from git_ckpt.loose_objects import start_maybe_over
        oids = staged.oids if '' not in staged.oids else [oid for oid in staged.oids if oid]
        wait_unproven = start_maybe_over(oids, objects_dir, policy.max_size)
    found = check_paths(staged, policy)
    rest = found.rest
    if not policy.max_size:
        rest = []
    elif wait_unproven is not None:
        unproven = set(wait_unproven())
        rest = [i for i in rest if staged.oids[i] in unproven] if unproven else []
    rest = [staged.entry(i) for i in rest]
    wanted = ([e.oid for e, _ in found.offences] + [e.oid for e, _ in found.weights]
              + [e.oid for e in found.symlinks] + [e.oid for e in rest])
    sizes = git_index.object_sizes([oid for oid in wanted if oid], cwd=top, objects_dir=objects_dir)
    offences = [o._replace(size=sizes.get(e.oid)) for e, o in found.offences]
    if policy.max_size:
        offences += [Offence(e.path, 'size', e.path, '', sizes[e.oid], '/' + e.path)
                     for e in rest if sizes.get(e.oid, 0) > policy.max_size]
    # A Git LFS pointer is small: only small weight files can be one.
    lfs_candidates = []
    for entry, offence in found.weights:
        offence = offence._replace(size=sizes.get(entry.oid))
        if offence.size is not None and offence.size < C.LFS_POINTER_MAX_SIZE:
            lfs_candidates.append((entry, offence))
        else:
            offences.append(offence)
    if lfs_candidates or found.symlinks:
        contents = git_index.object_contents(
            [e.oid for e, _ in lfs_candidates] + [e.oid for e in found.symlinks], cwd=top)
        offences += [o for e, o in lfs_candidates if not is_lfs_pointer(contents.get(e.oid, b''))]
        for entry in found.symlinks:
            target = os.fsdecode(contents.get(entry.oid, b''))
            if target and link_target_in_root(top, entry.path, target, policy.root):
                offences.append(Offence(entry.path, 'symlink', entry.path, target,
                                        sizes.get(entry.oid), '/' + entry.path))
    return sorted(offences, key=lambda o: o.path)


def scratch_roots(settings, top: str) -> tuple[tuple[str, ...], str | None]:
    """The scratch root (as configured and real) and its place inside the
    worktree, if any.  Unset, missing or broken: no root checks, no failure."""
    from git_ckpt.settings import root_path
    try:
        path = root_path(None, settings)[0]
    except GitCkptError:
        return (), None
    if not os.path.isdir(path):
        return (), None
    roots = tuple(dict.fromkeys((os.path.normpath(path), os.path.realpath(path))))
    top_real = os.path.realpath(top)
    for root in roots[::-1]:
        for base in dict.fromkeys((top_real, os.path.normpath(top))):
            rel = os.path.relpath(root, base)
            if rel != '.' and not rel.startswith('..' + os.sep) and rel != '..':
                return roots, rel.replace(os.sep, '/')
    return roots, None


def load_policy(top: str, extra_allow: list[str], max_size_arg: str | None,
                config: list[tuple[str, str, str]] | None = None) -> Policy:
    """`config`: git.config_get_all()'s result when already read."""
    from git_ckpt.settings import Settings
    settings = Settings(tuple(git.config_get_all(top) if config is None else config))
    if max_size_arg is not None:
        max_size = parse_size(max_size_arg, '--max-file-size')
    else:
        configured = settings.get(C.CONFIG_MAX_FILE_SIZE)
        max_size = (parse_size(configured[0], C.CONFIG_MAX_FILE_SIZE) if configured
                    else C.GUARD_DEFAULT_MAX_FILE_SIZE)
    allow = tuple(settings.get_all(C.CONFIG_ALLOW)) + tuple(extra_allow)
    roots, in_repo = scratch_roots(settings, top)
    return Policy(max_size, allow, roots, in_repo)


class Args(record('Args', 'allow max_size filenames staged_on_stdin')):
    """allow: patterns; max_size: the --max-file-size text or None;
    filenames: None to check everything staged; staged_on_stdin: the native
    shim pipes the guard's `git config` and `git diff` to stdin, each with
    its exit status (git_index.parse_shim_stream)."""
    __slots__ = ()


STAGED_ON_STDIN = '--staged-on-stdin'  # internal: only the native shim passes it


def parse_args(argv: list[str]) -> Args:
    """`[--allow PATTERN]... [--max-file-size SIZE] [--] [FILE...]` by hand:
    argparse costs more import time than this whole hook should."""
    allow, max_size, files, staged_on_stdin = [], None, [], False
    it = iter(argv)
    for arg in it:
        name, eq, value = arg.partition('=')
        if name in ('--allow', '--max-file-size'):
            if not eq:
                value = next(it, None)
                if value is None:
                    raise GitCkptError(f'{name} needs a value', f'e.g. {name} "tests/fixtures/*"')
            if name == '--allow':
                allow.append(value)
            else:
                max_size = value
        elif arg == STAGED_ON_STDIN:
            staged_on_stdin = True
        elif arg == '--':
            files.extend(it)
        elif arg.startswith('-'):
            raise GitCkptError(f'unknown guard option {arg}', 'use --allow PATTERN or --max-file-size SIZE')
        else:
            files.append(arg)
            files.extend(it)  # the first file ends the options (thousands may follow)
    return Args(allow, max_size, files or None, staged_on_stdin)


def read_shim_stream(cwd: str | None) -> tuple[list[tuple[str, str, str]], git_index.Staged]:
    """The config and staged changes the shim's git calls piped to stdin;
    what git failed to give is asked for again here, for git's message."""
    chunks = []
    while chunk := os.read(0, 1 << 20):
        chunks.append(chunk)
    config, staged = git_index.parse_shim_stream(b''.join(chunks))
    return (config if config is not None else git.config_get_all(cwd),
            staged if staged is not None else git_index.staged_changes(cwd))


def objects_dir(common_dir: str) -> str | None:
    """Where `git add` wrote the staged blobs: GIT_OBJECT_DIRECTORY when set
    (absolute; a relative one was relative to a cwd we may not share), else
    the common dir's objects/.  A wrong guess only sends more oids to cat-file:
    a loose object file named by an oid holds that object, wherever it is."""
    env = os.environ.get('GIT_OBJECT_DIRECTORY')
    if env:
        return env if os.path.isabs(env) else None
    return os.path.join(common_dir, 'objects')


def run(argv: list[str], cwd: str | None = None) -> int:
    """The guard; 0 when the commit may go ahead, 1 when blocked."""
    args = parse_args(argv)
    if args.filenames is None and args.staged_on_stdin:
        # Both git calls ran while Python started.
        config, staged = read_shim_stream(cwd)
        wait_config, wait_staged = (lambda: config), (lambda: staged)
    else:
        # The staged diff (or the index) and the config start at once.
        if args.filenames is None:
            wait_staged = git_index.start_staged_changes(cwd)
        else:
            wait_staged = git_index.start_entries_in_index(args.filenames, cwd)
        wait_config = git.start_config_get_all(cwd)
    # The top is read from .git when git runs us.
    top, common_dir = git.hook_top_and_common_dir(cwd) or git.start_top_and_common_dir(cwd)()
    if top is None:
        return 0  # a bare repository has nothing staged
    staged = wait_staged()  # first: git config finishes meanwhile
    policy = load_policy(top, args.allow, args.max_size, config=wait_config())
    offences = check(staged, policy, top, objects_dir=objects_dir(common_dir))
    if not offences:
        return 0
    from git_ckpt.guard_message import render
    try:
        with open(os.path.join(top, '.gitignore'), encoding='utf-8', errors='surrogateescape') as f:
            gitignore = f.read()
    except OSError:
        gitignore = ''
    message = render(offences, policy, framework=args.filenames is not None, gitignore=gitignore)
    # Bytes out as git gave them: a non-UTF-8 name in a command must paste back as itself.
    sys.stderr.flush()
    sys.stderr.buffer.write(message.encode('utf-8', 'surrogateescape') + b'\n')
    sys.stderr.buffer.flush()
    return 1


def main(argv: list[str]) -> int:
    """Hook entry: never a traceback, and never a silent pass on our own bug."""
    try:
        return run(argv)
    except GitCkptError as exc:
        print(f'git-ckpt: error: {exc}', file=sys.stderr)
    except KeyboardInterrupt:
        print('git-ckpt: interrupted', file=sys.stderr)
        return 130
    except Exception as exc:
        print(f'git-ckpt: internal error in the commit guard: {exc!r}; '
              'commit without the guard with git commit --no-verify, and report it', file=sys.stderr)
    print('git-ckpt: commit blocked because the guard could not run', file=sys.stderr)
    return 1
