"""git plumbing: every subprocess call to git goes through here.

Standard library only: the hooks, `path` and `setup()` import it.  The CLI uses
it too rather than GitPython: every call git-ckpt makes is a one-shot plumbing
command with NUL-separated output, which this module parses in a few lines,
and one way of calling git is easier to keep right than two (importing
GitPython alone costs ~100 ms per command).

The commit hook imports this module on every commit, so its only module-level
import is os: subprocess, pathlib, typing and collections (with the re, enum,
threading, signal... they pull in) cost the hook more than its own work, and
are imported by the functions that need them (records.record, not namedtuple).  Every git process
is started by start_git() (spawn.py: os.posix_spawnp, not subprocess); run_git waits for it at
once, and callers with independent calls (the hook, setup()) start them together.
"""
from __future__ import annotations

import os

from git_ckpt import spawn
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

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


class GitResult(record('GitResult', 'args returncode stdout stderr')):
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
    the hook's diff, config and rev-parse; setup()'s config and rev-parse."""
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


class RepoPaths(record('RepoPaths', 'top git_dir common_dir is_bare')):
    """top: the worktree top level (a Path; None in a bare repository);
    git_dir: this worktree's admin dir (.git or .git/worktrees/<name>);
    common_dir: the admin dir all worktrees share; is_bare: a bool."""
    __slots__ = ()


_REPO_PATHS_ARGS = ('rev-parse', '--path-format=absolute', '--is-bare-repository',
                    '--git-dir', '--git-common-dir', '--show-toplevel')


def repo_paths(cwd: str | os.PathLike[str] | None = None) -> RepoPaths:
    """Locate the repository around `cwd` with one git call."""
    return start_repo_paths(cwd)()


def start_repo_paths(cwd: str | os.PathLike[str] | None = None) -> Callable[[], RepoPaths]:
    """repo_paths(cwd), its git started now; call the result (once) to wait for it."""
    wait = start_git(*_REPO_PATHS_ARGS, cwd=cwd, check=False)
    return lambda: _repo_paths(wait(), cwd)


def _repo_paths(proc: GitResult, cwd: str | os.PathLike[str] | None) -> RepoPaths:
    from pathlib import Path
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
    from pathlib import Path
    out = run_git('rev-parse', '--path-format=absolute', option, cwd=cwd).stdout
    return Path(out[:-1] if out.endswith('\n') else out)


def _git_dirs(cwd: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    return _one_path('--git-dir', cwd), _one_path('--git-common-dir', cwd)


CONFIG_ARGS = ('config', '--show-scope', '--null', '--get-regexp', r'^ckpt\.')


def config_get_all(cwd: str | os.PathLike[str] | None = None) -> list[tuple[str, str, str]]:
    """Every `ckpt.*` setting as (scope, key, value), in git's order
    (system, global, local, worktree); later entries override earlier ones."""
    proc = run_git(*CONFIG_ARGS, cwd=cwd, check=False)
    if proc.returncode not in (0, 1):  # 1: no match
        first = (proc.stderr.strip().splitlines() or [''])[0]
        raise GitCkptError(f'cannot read git config: {first}', 'fix the config file git names')
    return _parse_config(proc.stdout)


def _parse_config(stdout: str) -> list[tuple[str, str, str]]:
    return config_from_fields(stdout.split('\0'))


def config_from_fields(fields: list[str]) -> list[tuple[str, str, str]]:
    # With --null, git separates the scope from its record by NUL too:
    # "scope\0key\nvalue\0" per entry.
    out = []
    for scope, entry in zip(fields[0::2], fields[1::2]):
        key, _, value = entry.partition('\n')
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


class WorktreeEntry(record('WorktreeEntry', 'path head branch bare detached locked prunable')):
    """path: a Path; head: the commit or None; branch: the short name, None
    when detached; bare, detached, locked, prunable: bools."""
    __slots__ = ()


def worktree_list(cwd: str | os.PathLike[str] | None = None) -> list[WorktreeEntry]:
    """`git worktree list --porcelain -z`, parsed."""
    from pathlib import Path
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
        path = Path(fields['worktree'])
        if not entries and 'bare' not in fields:
            path = main_worktree_top(path) or path
        entries.append(WorktreeEntry(
            path=path, head=fields.get('HEAD'), branch=branch,
            bare='bare' in fields, detached='detached' in fields,
            locked='locked' in fields, prunable='prunable' in fields,
        ))
    return entries


def main_worktree_top(path: Path) -> Path | None:
    """The main worktree of the repository whose common git dir is `path`
    (`path` itself when it already is a worktree).  git lists a submodule's
    main worktree as its git dir (<super>/.git/modules/NAME), whose worktree
    is elsewhere (core.worktree); None for a bare repository."""
    if path.name == '.git' or os.path.lexists(path / '.git'):
        return path.parent if path.name == '.git' else path
    if not (os.path.isfile(path / 'HEAD') and os.path.isdir(path / 'objects')):
        return path  # not a git dir: taken as it is
    from pathlib import Path
    proc = run_git('rev-parse', '--show-toplevel', cwd=path, check=False, env=clean_env())
    top = proc.stdout.strip() if proc.returncode == 0 else ''
    return Path(top) if top else None


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


# --- Started now, waited for later (the commit hook overlaps its git calls) ---

def start_parsed(args: tuple[str, ...], cwd, parse, ordinary, ok=(0,)):
    """`ordinary(cwd)`'s result from a git process started now: parsed from its
    output when git succeeded, else by calling `ordinary` (which raises the
    usual error with git's message)."""
    wait = start_git(*args, cwd=cwd, check=False)

    def result():
        proc = wait()
        value = parse(proc.stdout) if proc.returncode in ok else None
        return ordinary(cwd) if value is None else value
    return result


def start_config_get_all(cwd=None):
    """config_get_all(cwd), started now; call the result to wait for it."""
    return start_parsed(CONFIG_ARGS, cwd, _parse_config, config_get_all, ok=(0, 1))


def _parse_top_and_common_dir(stdout: str) -> tuple[str, str] | None:
    lines = stdout.split('\n')
    if len(lines) != 5 or lines[0] != 'false':
        return None  # bare, or a path with a newline: repo_paths() sorts it out
    return lines[3], lines[2]


def start_top_and_common_dir(cwd=None):
    """(worktree top, common git dir) as strings, started now; call the result
    to wait for it.  (None, common dir) in a bare repository."""
    def ordinary(cwd):
        paths = repo_paths(cwd)
        return (None if paths.top is None else os.fspath(paths.top)), os.fspath(paths.common_dir)
    return start_parsed(_REPO_PATHS_ARGS, cwd, _parse_top_and_common_dir, ordinary)


def hook_top_and_common_dir(cwd: str | None = None) -> tuple[str, str] | None:
    """(worktree top, common git dir) of the hook git is running, read from
    the files git itself reads, without a rev-parse process (a git process
    costs the commit hook more than its start: the hook's other two compete
    for the same cores).  git runs pre-commit in the top of the worktree,
    exporting GIT_PREFIX, and GIT_DIR when the git dir is not ./.git (a linked
    worktree).  None, to ask rev-parse, when anything is unusual: not run by
    git, GIT_WORK_TREE or GIT_COMMON_DIR set, no .git here, an unreadable or
    odd gitdir file.  A wrong common dir would only send more oids to
    cat-file (guard.objects_dir)."""
    env = os.environ
    if 'GIT_PREFIX' not in env or 'GIT_WORK_TREE' in env or 'GIT_COMMON_DIR' in env:
        return None
    try:
        top = os.path.abspath(cwd) if cwd is not None else os.getcwd()
        git_dir = env.get('GIT_DIR')
        if git_dir is None:
            dot_git = os.path.join(top, '.git')
            if os.path.isdir(dot_git):
                git_dir = dot_git
            else:  # a linked worktree or submodule: 'gitdir: <path>\n'
                with open(dot_git, 'rb') as f:
                    line = f.read(4097)
                if not line.startswith(b'gitdir: ') or line.count(b'\n') != 1 or not line.endswith(b'\n'):
                    return None
                git_dir = os.fsdecode(line[8:-1])
        git_dir = os.path.join(top, git_dir)
        try:
            with open(os.path.join(git_dir, 'commondir'), 'rb') as f:
                common = os.fsdecode(f.read().rstrip(b'\n'))
        except FileNotFoundError:
            common = git_dir
        else:
            if not common or '\n' in common:
                return None
        common_dir = os.path.normpath(os.path.join(git_dir, common))
    except (OSError, ValueError):
        return None
    return (top, common_dir) if os.path.isdir(common_dir) else None


def tracked_files(paths: list[str], cwd: str | os.PathLike[str]) -> list[str]:
    """The files git tracks under `paths` (relative to cwd)."""
    if not paths:
        return []
    proc = run_git('ls-files', '-z', '--', *paths, cwd=cwd)
    return [p for p in proc.stdout.split('\0') if p]
