"""Settings: where the scratch root is, and the project name.

Resolution order for the root, first hit wins: `--root` flag, GIT_CKPT_ROOT,
`git config ckpt.root` (local, then global, then system), autodetected
cluster scratch, then a fallback under the user cache dir (with a warning:
that one sits on the home filesystem, which is what we are trying to avoid).
Standard library only (the hooks import it).
"""
from __future__ import annotations

import os
from collections import namedtuple
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError

_SCOPE_ORDER = {'worktree': 0, 'local': 1, 'global': 2, 'system': 3, 'command': -1}


# collections.namedtuple rather than typing.NamedTuple here and in the other
# modules setup() imports: typing costs ~3 ms to import and ~1 ms per class
# (it compiles every string annotation), a tenth of setup()'s budget.
class Settings(namedtuple('Settings', ['entries'])):
    """`ckpt.*` git config, already split by key (last value per scope wins).

    entries: ((scope, key, value), ...) in git's order.
    """
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


class RootChoice(namedtuple('RootChoice', ['path', 'source', 'warning'])):
    """path: the root (a Path); source: human-readable, where it came from;
    warning: set when the root sits on the home filesystem by fallback."""
    __slots__ = ()


def user_name() -> str:
    import getpass  # ~0.5 ms, and only autodetection needs it
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return str(os.geteuid())


def user_cache_dir() -> Path:
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / C.FALLBACK_ROOT_NAME


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
    if cli_root:
        return RootChoice(_absolute(cli_root), '--root', None)
    if environ.get(C.ENV_ROOT):
        return RootChoice(_absolute_setting(environ[C.ENV_ROOT], C.ENV_ROOT), C.ENV_ROOT, None)
    configured = settings.get(C.CONFIG_ROOT) if settings is not None else None
    if configured:
        value, scope = configured
        return RootChoice(_absolute_setting(value, f'{C.CONFIG_ROOT} ({scope} git config)'),
                          f'git config {C.CONFIG_ROOT} ({scope})', None)
    for path, label in autodetect_candidates(environ):
        if _usable(path):
            return RootChoice(_absolute(path), f'autodetected {label}', None)
    fallback = user_cache_dir()
    return RootChoice(
        fallback, 'fallback (user cache dir)',
        f'scratch root {fallback} is on your home filesystem (no cluster scratch found); '
        f'set one with: git config --global {C.CONFIG_ROOT} /path/to/scratch',
    )


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _absolute_setting(value: str, where: str) -> Path:
    """A root from the environment or git config must be absolute: hooks and
    jobs run from other directories, and a relative root would give each of
    them a different scratch dir."""
    expanded = os.path.expanduser(value)
    if not os.path.isabs(expanded):
        raise GitCkptError(f'scratch root {value!r} from {where} is a relative path',
                           'set an absolute path (or ~/...), e.g. /scratch/$USER')
    return Path(os.path.normpath(expanded))


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
