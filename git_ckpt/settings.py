"""Settings: where the scratch root is, and the project name.

Resolution order for the root, first hit wins: `--root` flag, GIT_CKPT_ROOT,
`git config ckpt.root` (local, then global, then system), autodetected
cluster scratch, then a fallback under the user cache dir (with a warning:
that one sits on the home filesystem, which is what we are trying to avoid).
Standard library only (the hooks import it).  The commit hook reads settings
on every commit, so pathlib and typing are imported only by the
functions that need them (the hook uses root_path(), which returns a string).
"""
from __future__ import annotations

import os

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pathlib import Path

_SCOPE_ORDER = {'worktree': 0, 'local': 1, 'global': 2, 'system': 3, 'command': -1}


class Settings(record('Settings', 'entries')):
    """`ckpt.*` git config, already split by key (last value per scope wins).
    entries: (scope, key, value) tuples in git's order."""
    __slots__ = ()

    def get(self, key: str) -> tuple[str, str] | None:
        """(value, scope) of the most specific setting of `key`."""
        key = key.lower()
        best = None
        for scope, k, value in self.entries:
            if k == key:
                rank = _SCOPE_ORDER.get(scope, 9)
                if best is None or rank <= best[0]:
                    best = (rank, value, scope)
        return None if best is None else (best[1], best[2])

    def get_all(self, key: str) -> list[str]:
        key = key.lower()
        return [value for _, k, value in self.entries if k == key]


def load_settings(cwd: str | os.PathLike[str] | None = None) -> Settings:
    from git_ckpt.git import config_get_all
    return Settings(tuple(config_get_all(cwd)))


class RootChoice(record('RootChoice', 'path source warning')):
    """path: the root (a Path); source: where it came from, human-readable;
    warning: set when the root sits on the home filesystem by fallback."""
    __slots__ = ()


def user_name() -> str:
    """What getpass.getuser() answers, without importing getpass (its imports
    cost the commit hook ~5 ms when the root is autodetected)."""
    for name in ('LOGNAME', 'USER', 'LNAME', 'USERNAME'):
        if os.environ.get(name):
            return os.environ[name]
    import pwd
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (some containers)
        return str(os.geteuid())


def user_cache_dir() -> Path:
    from pathlib import Path
    return Path(_user_cache_dir())


def _user_cache_dir() -> str:
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, C.FALLBACK_ROOT_NAME)


def _usable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def autodetect_candidates(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[tuple[str, str]]:
    """(path, label) pairs tried in order by autodetection."""
    user = user_name()
    out = []
    if environ.get(C.ENV_SCRATCH):
        out.append((environ[C.ENV_SCRATCH], f'${C.ENV_SCRATCH}'))
    for pattern in C.AUTODETECT_ROOTS:
        out.append((pattern.format(user=user), pattern.replace('{user}', '$USER')))
    return out


def resolve_root(
        cli_root: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        environ: dict[str, str] | os._Environ[str] = os.environ,
) -> RootChoice:
    """Pick the scratch root.  Does not create or check it (see scratch.ensure_root)."""
    from pathlib import Path
    path, source, warning = root_path(cli_root, settings, environ)
    return RootChoice(Path(path), source, warning)


def root_path(
        cli_root: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        environ: dict[str, str] | os._Environ[str] = os.environ,
) -> tuple[str, str, str | None]:
    """resolve_root() as (path string, source, warning), for callers that need
    no Path (the commit hook)."""
    if cli_root:
        return _absolute(cli_root), '--root', None
    if environ.get(C.ENV_ROOT):
        return _absolute_setting(environ[C.ENV_ROOT], C.ENV_ROOT), C.ENV_ROOT, None
    configured = settings.get(C.CONFIG_ROOT) if settings is not None else None
    if configured:
        value, scope = configured
        return (_absolute_setting(value, f'{C.CONFIG_ROOT} ({scope} git config)'),
                f'git config {C.CONFIG_ROOT} ({scope})', None)
    for path, label in autodetect_candidates(environ):
        if _usable(path):
            return _absolute(path), f'autodetected {label}', None
    fallback = _user_cache_dir()
    return (
        fallback, 'fallback (user cache dir)',
        f'scratch root {fallback} is on your home filesystem (no cluster scratch found); '
        f'set one with: git config --global {C.CONFIG_ROOT} /path/to/scratch',
    )


def _absolute(path: str | os.PathLike[str]) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _absolute_setting(value: str, where: str) -> str:
    """A root from the environment or git config must be absolute: hooks and
    jobs run from other directories, and a relative root would give each of
    them a different scratch dir."""
    expanded = os.path.expanduser(value)
    if not os.path.isabs(expanded):
        raise GitCkptError(f'scratch root {value!r} from {where} is a relative path',
                           'set an absolute path (or ~/...), e.g. /scratch/$USER')
    return os.path.normpath(expanded)


def validate_name(name: str) -> str:
    """A project name becomes one directory component: refuse anything else."""
    bad = (
        not name or name in ('.', '..') or '/' in name or '\0' in name
        or any(ord(ch) < 32 for ch in name) or len(name) > C.MAX_NAME_LEN
        or name.startswith('.')
    )
    if bad:
        raise GitCkptError(
            f'invalid project name {name!r}',
            f'use a plain name (no slashes, not empty, not starting with ".", '
            f'at most {C.MAX_NAME_LEN} characters), e.g. --name my_exp',
        )
    return name


def quiet(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get(C.ENV_QUIET, '') not in ('', '0', 'false', 'no')
