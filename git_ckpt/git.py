"""git plumbing: every subprocess call to git goes through here.

Standard library only: the hooks, `path` and `setup()` import it.  The CLI uses
it too rather than GitPython: every call git-ckpt makes is a one-shot plumbing
command with NUL-separated output, which this module parses in a few lines,
and one way of calling git is easier to keep right than two (importing
GitPython alone costs ~100 ms per command).
"""
from __future__ import annotations

import os
from collections import namedtuple  # not typing.NamedTuple: see settings.Settings
from collections.abc import Callable
from pathlib import Path

from git_ckpt import spawn
from git_ckpt.errors import GitCkptError

# Variables that git exports to hooks and that would pin a nested git call to
# the wrong repository or index when we ask about another worktree.
_REPO_ENV = (
    'GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_COMMON_DIR',
    'GIT_OBJECT_DIRECTORY', 'GIT_PREFIX',
)


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if env is None else env)
    for name in _REPO_ENV:
        env.pop(name, None)
    return env


class GitResult(namedtuple('GitResult', ['args', 'returncode', 'stdout', 'stderr'])):
    """What run_git returns: the fields of subprocess.CompletedProcess."""
    __slots__ = ()


def run_git(
        *args: str,
        cwd: str | os.PathLike[str] | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        text: bool = True,
        input: str | bytes | None = None,
) -> GitResult:
    """Run git; raise GitCkptError on failure when `check`.

    text=True decodes stdout and stderr as UTF-8 (undecodable bytes
    surrogate-escaped, like os.fsdecode); newlines are left as git wrote them.
    """
    return start_git(*args, cwd=cwd, check=check, env=env, text=text, input=input)()


def start_git(
        *args: str,
        cwd: str | os.PathLike[str] | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        text: bool = True,
        input: str | bytes | None = None,
) -> Callable[[], GitResult]:
    """run_git, started now: returns the function that waits for git and
    returns (or raises) what run_git would.  Call it exactly once, also on
    error paths (it reaps the process).  Independent git calls then overlap:
    setup() reads the config while rev-parse runs."""
    argv = ['git', *args] if cwd is None else ['git', '-C', os.fspath(cwd), *args]
    if isinstance(input, str):
        input = input.encode('utf-8', 'surrogateescape')
    try:
        collect = spawn.start(argv, env, input)
    except FileNotFoundError:
        raise GitCkptError('git is not installed or not on PATH', 'install git >= 2.36')
    return lambda: _result(args, argv, cwd, check, text, *collect())


def _result(args, argv, cwd, check: bool, text: bool, returncode: int, out: bytes, err: bytes) -> GitResult:
    if returncode != 0 and cwd is not None and not os.path.isdir(cwd):
        # `git -C` refused the directory (what subprocess's cwd= raised for).
        if os.path.exists(cwd):
            raise GitCkptError(f'{cwd} is not a directory', 'run git ckpt inside a worktree')
        raise GitCkptError(f'{cwd} does not exist', 'give the path of an existing worktree')
    if check and returncode != 0:
        first = (err.decode(errors='replace').strip().splitlines() or [f'exit {returncode}'])[0]
        raise GitCkptError(f'git {args[0]} failed: {first}', 'see the git message above')
    if text:
        out, err = out.decode('utf-8', 'surrogateescape'), err.decode('utf-8', 'surrogateescape')
    return GitResult(argv, returncode, out, err)


class RepoPaths(namedtuple('RepoPaths', ['top', 'git_dir', 'common_dir', 'is_bare'])):
    """top: the worktree top level (None in a bare repository); git_dir: this
    worktree's admin dir (.git or .git/worktrees/<name>); common_dir: shared
    by all worktrees."""
    __slots__ = ()


def repo_paths(cwd: str | os.PathLike[str] | None = None) -> RepoPaths:
    """Locate the repository around `cwd` with one git call."""
    proc = run_git(
        'rev-parse', '--path-format=absolute', '--is-bare-repository',
        '--git-dir', '--git-common-dir', '--show-toplevel',
        cwd=cwd, check=False,
    )
    if proc.returncode != 0:
        where = os.fspath(cwd) if cwd is not None else os.getcwd()
        if 'must be run in a work tree' in proc.stderr:
            # A bare repository, or inside some .git dir (an error path: a
            # second call costs nothing on the way that works).
            bare = run_git('rev-parse', '--is-bare-repository', cwd=cwd, check=False)
            if bare.stdout.strip() == 'true':
                return RepoPaths(None, *_git_dirs(cwd), True)
            raise GitCkptError(f'{where} is inside a git dir, not a worktree',
                               'cd to the top of a worktree (or one of its subdirectories)')
        if 'not a git repository' in proc.stderr:
            raise GitCkptError(
                f'{where} is not inside a git repository',
                'cd into a worktree of your project (or set GIT_CKPT_DIR for jobs run outside one)',
            )
        first = (proc.stderr.strip().splitlines() or ['unknown error'])[0]
        raise GitCkptError(f'git rev-parse failed in {where}: {first}', 'check the repository')
    lines = proc.stdout.split('\n')
    if len(lines) != 5:  # "bare, git dir, common dir, top" + the final newline
        # A path holding a newline: ask for each value on its own.
        return RepoPaths(_one_path('--show-toplevel', cwd), *_git_dirs(cwd), False)
    return RepoPaths(Path(lines[3]), Path(lines[1]), Path(lines[2]), lines[0] == 'true')


def _one_path(option: str, cwd: str | os.PathLike[str] | None) -> Path:
    out = run_git('rev-parse', '--path-format=absolute', option, cwd=cwd).stdout
    return Path(out[:-1] if out.endswith('\n') else out)


def _git_dirs(cwd: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    return _one_path('--git-dir', cwd), _one_path('--git-common-dir', cwd)


def config_get_all(cwd: str | os.PathLike[str] | None = None) -> list[tuple[str, str, str]]:
    """Every `ckpt.*` setting as (scope, key, value), in git's order
    (system, global, local, worktree); later entries override earlier ones."""
    return start_config_get_all(cwd)()


def start_config_get_all(cwd: str | os.PathLike[str] | None = None) -> Callable[[], list[tuple[str, str, str]]]:
    """config_get_all, started now (see start_git); call the result once."""
    wait = start_git('config', '--show-scope', '--null', '--get-regexp', r'^ckpt\.', cwd=cwd, check=False)
    return lambda: _parse_config(wait())


def _parse_config(proc: GitResult) -> list[tuple[str, str, str]]:
    if proc.returncode not in (0, 1):  # 1: no match
        first = (proc.stderr.strip().splitlines() or [''])[0]
        raise GitCkptError(f'cannot read git config: {first}', 'fix the config file git names')
    # With --null, git separates the scope from its record by NUL too:
    # "scope\0key\nvalue\0" per entry.
    fields = proc.stdout.split('\0')
    out = []
    for scope, record in zip(fields[0::2], fields[1::2]):
        key, _, value = record.partition('\n')
        out.append((scope, key.lower(), value))
    return out


def config_get(key: str, cwd: str | os.PathLike[str] | None = None) -> str | None:
    """One config value (git's own precedence), or None."""
    proc = run_git('config', '--get', key, cwd=cwd, check=False)
    return proc.stdout.rstrip('\n') if proc.returncode == 0 else None


def config_set(
        key: str, value: str, *, scope: str = 'local', add: bool = False,
        cwd: str | os.PathLike[str] | None = None,
) -> None:
    args = ['config', f'--{scope}']
    if add:
        args.append('--add')
    run_git(*args, key, value, cwd=cwd)


def config_unset(
        key: str, *, scope: str = 'local', value_pattern: str | None = None,
        fixed_value: bool = False, cwd: str | os.PathLike[str] | None = None,
) -> None:
    """Remove every value of `key` (matching `value_pattern`, a regex, or the
    exact string with fixed_value=True)."""
    args = ['config', f'--{scope}', '--unset-all', key]
    if value_pattern is not None:
        args.append(value_pattern)
        if fixed_value:
            args.insert(1, '--fixed-value')
    proc = run_git(*args, cwd=cwd, check=False)
    if proc.returncode not in (0, 5):  # 5: nothing to unset
        raise GitCkptError(f'cannot unset {key}: {proc.stderr.strip()}', 'edit the git config by hand')


class WorktreeEntry(namedtuple('WorktreeEntry',
                               ['path', 'head', 'branch', 'bare', 'detached', 'locked', 'prunable'])):
    """One `git worktree list` record; branch is the short name, None when detached."""
    __slots__ = ()


def worktree_list(cwd: str | os.PathLike[str] | None = None) -> list[WorktreeEntry]:
    """`git worktree list --porcelain -z`, parsed."""
    proc = run_git('worktree', 'list', '--porcelain', '-z', cwd=cwd)
    entries = []
    for block in proc.stdout.split('\0\0'):
        fields: dict[str, str] = {}
        for line in block.split('\0'):
            if line:
                key, _, value = line.partition(' ')
                fields[key] = value
        if 'worktree' not in fields:
            continue
        branch = fields.get('branch')
        if branch and branch.startswith('refs/heads/'):
            branch = branch[len('refs/heads/'):]
        entries.append(WorktreeEntry(
            path=Path(fields['worktree']), head=fields.get('HEAD'), branch=branch,
            bare='bare' in fields, detached='detached' in fields,
            locked='locked' in fields, prunable='prunable' in fields,
        ))
    return entries


def current_branch(cwd: str | os.PathLike[str] | None = None) -> str | None:
    proc = run_git('symbolic-ref', '--quiet', '--short', 'HEAD', cwd=cwd, check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def worktree_remove(path: str | os.PathLike[str], *, force: bool = False,
                    cwd: str | os.PathLike[str] | None = None) -> GitResult:
    """`git worktree remove [--force] PATH`, unchecked: the caller reports git's
    own refusal (dirty or locked worktree) as it sees fit."""
    args = ['worktree', 'remove']
    if force:
        args.append('--force')
    return run_git(*args, os.fspath(path), cwd=cwd, check=False)


# --- The commit guard's view of the index (guard.py) -------------------------

class IndexEntry(namedtuple('IndexEntry', ['path', 'mode', 'oid'])):
    """path: relative to the worktree top, surrogate-escaped like os.fsdecode;
    mode: '100644', '100755', '120000' (symlink), '160000' (submodule);
    oid: the staged blob."""
    __slots__ = ()


def staged_changes(cwd: str | os.PathLike[str] | None = None) -> list[IndexEntry]:
    """Additions and modifications staged for the next commit; deletions left out.

    Porcelain `diff --cached` compares with the empty tree on an unborn branch
    (the first commit), whatever the object format.  `--no-renames`: a rename
    is a deletion plus an addition, and only the added path matters.  -z: paths
    come verbatim (spaces, newlines, non-ASCII).  The caller's GIT_INDEX_FILE is
    kept: `git commit -a` and `git commit PATH` hand hooks a temporary index.
    """
    proc = run_git(
        'diff', '--cached', '--raw', '-z', '--no-renames', '--no-abbrev', '--no-relative',
        '--no-color', '--no-ext-diff', '--ignore-submodules=none', '--diff-filter=d',
        cwd=cwd,
    )
    fields = proc.stdout.split('\0')
    out = []
    for header, path in zip(fields[0::2], fields[1::2]):
        # ':<old mode> <new mode> <old oid> <new oid> <status>'
        parts = header[1:].split(' ')
        if len(parts) == 5 and parts[4][:1] != 'D':
            out.append(IndexEntry(path, parts[1], parts[3]))
    return out


def index_entries(cwd: str | os.PathLike[str] | None = None) -> dict[str, IndexEntry]:
    """Every path in the index (`ls-files -s -z`), by path."""
    proc = run_git('ls-files', '--stage', '-z', cwd=cwd)
    out = {}
    for record in proc.stdout.split('\0'):
        if record:
            meta, _, path = record.partition('\t')
            mode, oid, _stage = meta.split(' ')
            out[path] = IndexEntry(path, mode, oid)
    return out


def loose_object_sizes(oids, objects_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Size of each object stored loose in `objects_dir`, from the object's own
    header ('<type> <size>\\0', zlib-compressed at the start of objects/xx/yyyy);
    objects not stored loose (packed, alternates) or unreadable are left out.

    The same header `cat-file --batch-check` reads, without its process and
    its five syscalls per object: a fresh `git add` of 5,000 files leaves
    5,000 loose objects, and reading their headers was most of the guard's time.
    """
    import zlib  # here: only the commit guard reads objects
    sizes = {}
    base = os.fspath(objects_dir) + os.sep
    inflate_class = zlib.decompressobj
    for oid in oids:
        try:
            fd = os.open(f'{base}{oid[:2]}{os.sep}{oid[2:]}', os.O_RDONLY)
        except OSError:
            continue  # packed, in an alternate, or missing: cat-file decides
        try:
            inflate = inflate_class()
            header = inflate.decompress(os.read(fd, 64), 64)
            while b'\0' not in header and not inflate.eof and len(header) < 64:
                more = inflate.unconsumed_tail or os.read(fd, 4096)
                if not more:
                    break
                header += inflate.decompress(more, 64 - len(header))
        except (OSError, zlib.error):
            continue
        finally:
            os.close(fd)
        kind, space, size = header.partition(b'\0')[0].partition(b' ')
        if space and size.isdigit() and b'\0' in header:
            sizes[oid] = int(size)
    return sizes


# Deflate's largest possible expansion: a 258-byte match coded in 2 bits.
DEFLATE_MAX_RATIO = 1032


def loose_object_size_bounds(oids, objects_dir: str | os.PathLike[str]) -> dict[str, int]:
    """An upper bound of each loose object's size: its zlib file can inflate
    to at most DEFLATE_MAX_RATIO times its own size (header included).  One
    stat per object instead of a read; objects not stored loose are left out."""
    bounds = {}
    base = os.fspath(objects_dir) + os.sep
    for oid in oids:
        try:
            bounds[oid] = os.stat(f'{base}{oid[:2]}{os.sep}{oid[2:]}').st_size * DEFLATE_MAX_RATIO
        except OSError:
            continue
    return bounds


def object_sizes(oids, cwd: str | os.PathLike[str] | None = None,
                 objects_dir: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Size of each object; missing ones left out.  Loose objects in
    `objects_dir` are read directly; the rest with ONE `cat-file --batch-check`."""
    oids = list(dict.fromkeys(oids))
    sizes = loose_object_sizes(oids, objects_dir) if objects_dir is not None else {}
    rest = [oid for oid in oids if oid not in sizes] if sizes else oids
    if not rest:
        return sizes
    proc = run_git('cat-file', '--batch-check=%(objectname) %(objectsize)',
                   cwd=cwd, input='\n'.join(rest) + '\n')
    for line in proc.stdout.splitlines():
        oid, _, size = line.partition(' ')
        if size.isdigit():
            sizes[oid] = int(size)
    return sizes


def in_background(fn, *args, **kwargs):
    """Run fn (a git call) in a thread; returns the function that waits for its
    result (or re-raises its error).  Lets independent git processes overlap."""
    import threading
    result: dict = {}

    def work() -> None:
        try:
            result['value'] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            result['error'] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()

    def wait():
        thread.join()
        if 'error' in result:
            raise result['error']
        return result['value']
    return wait


def object_contents(oids, cwd: str | os.PathLike[str] | None = None) -> dict[str, bytes]:
    """Content of a few (small) objects, with one `cat-file --batch`."""
    oids = list(dict.fromkeys(oids))
    if not oids:
        return {}
    proc = run_git('cat-file', '--batch', cwd=cwd, text=False,
                   input=('\n'.join(oids) + '\n').encode())
    data, pos, out = proc.stdout, 0, {}
    while pos < len(data):
        eol = data.index(b'\n', pos)
        header = data[pos:eol].split(b' ')
        pos = eol + 1
        if len(header) == 3:  # '<oid> <type> <size>', then content and a newline
            size = int(header[2])
            out[header[0].decode()] = data[pos:pos + size]
            pos += size + 1
    return out


def tracked_files(paths: list[str], cwd: str | os.PathLike[str]) -> list[str]:
    """The files git tracks under `paths` (relative to cwd)."""
    if not paths:
        return []
    proc = run_git('ls-files', '-z', '--', *paths, cwd=cwd)
    return [p for p in proc.stdout.split('\0') if p]
