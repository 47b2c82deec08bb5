"""The scratch root on disk: safe directory creation and manifests.

Shared scratch is multi-user.  Someone could pre-create your path to read or
plant checkpoints, or put a symlink where a directory should be.  So every
directory git-ckpt creates is 0700, and every existing component below the
root must be a real directory we own.  Standard library only.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

# json is imported where it is used, and datetime not at all (see now_iso):
# setup() reads its manifests on every call but rarely writes one, and each
# import is ~1 ms of the start-up budget of a training script.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError


def owner_name(uid: int) -> str:
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f'uid {uid}'


def check_root(root: Path, *, create_fallback: bool = False) -> Path:
    """Return the real path of a usable root, or raise with the fix.

    A root may be a symlink (clusters often link /scratch elsewhere); what it
    points at must be a directory we own, or a root-owned sticky directory
    such as /tmp or a site-wide /scratch.
    """
    if create_fallback:
        try:
            os.makedirs(root, mode=C.DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise GitCkptError(f'cannot create scratch root {root}: {exc.strerror}',
                               f'set a writable root: git config --global {C.CONFIG_ROOT} DIR')
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise GitCkptError(f'scratch root {root} does not exist',
                           f'create it (mkdir -p {root}) or point {C.CONFIG_ROOT} / {C.ENV_ROOT} elsewhere')
    except OSError as exc:
        raise GitCkptError(f'cannot access scratch root {root}: {exc.strerror}',
                           'fix its permissions or choose another root')
    if not stat.S_ISDIR(st.st_mode):
        raise GitCkptError(f'scratch root {root} is not a directory',
                           f'point {C.CONFIG_ROOT} / {C.ENV_ROOT} at a directory')
    me = os.geteuid()
    sticky_shared = st.st_uid == 0 and st.st_mode & stat.S_ISVTX
    if st.st_uid != me and not sticky_shared:
        raise GitCkptError(
            f'scratch root {root} is owned by {owner_name(st.st_uid)}, not you',
            f'use a directory of your own, e.g. {root}/{_user()} (mkdir -m 700)')
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise GitCkptError(
            f'scratch root {root} is world-writable without the sticky bit (anyone could replace your dirs)',
            f'chmod o-w {root} or chmod +t {root}, or use a private subdirectory')
    if not os.access(root, os.W_OK | os.X_OK):
        raise GitCkptError(f'scratch root {root} is not writable by you',
                           'fix its permissions or choose another root')
    return Path(os.path.realpath(root))


def _user() -> str:
    from git_ckpt.settings import user_name
    return user_name()


def ensure_private_dir(root: Path, relative: Path | str, *, create: bool = True) -> Path:
    """Create (or check) root/relative one component at a time.

    Each component must be a real directory owned by us; new ones are 0700.
    A concurrent creator (another rank) is fine: EEXIST is re-checked.
    Returns the path, or raises.  With create=False a missing component is
    not an error: the path is returned as it would be.
    """
    current = root
    for part in Path(relative).parts:
        current = current / part
        try:
            if create:
                os.mkdir(current, C.DIR_MODE)
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise GitCkptError(f'no space left to create {current}', 'free space on the scratch filesystem')
            raise GitCkptError(f'cannot create {current}: {exc.strerror}',
                               'check the permissions of the scratch root')
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            if create:
                raise GitCkptError(f'{current} vanished while being created', 'run the command again')
            return root / relative
        check_owned_dir(current, st)
    return current


def check_existing_path(root: Path, relative: Path | str) -> None:
    """Refuse a scratch path someone else has a hand in, before anything is
    read from or written to it: every existing component below the root must
    be a real directory of ours, and a manifest in it (the repo manifest in
    the project dir, the manifest in the worktree dir) a regular file of ours.
    A manifest that is a link or someone else's would make git-ckpt treat a
    foreign tree as managed (or write through it).  Missing parts are fine."""
    current = root
    for part in Path(relative).parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return
        check_owned_dir(current, st)
        for name in (C.REPO_MANIFEST_NAME, C.MANIFEST_NAME):
            check_owned_file(current / name)


def check_owned_file(path: Path) -> None:
    """A file git-ckpt keeps (manifest, lock): absent, or a regular file of ours."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise GitCkptError(f'{path} is a symlink where git-ckpt expects its own file',
                           'remove the link (someone may be redirecting your checkpoints) and run again')
    if not stat.S_ISREG(st.st_mode):
        raise GitCkptError(f'{path} is not a regular file', 'move it away and run again')
    if st.st_uid != os.geteuid():
        raise GitCkptError(f'{path} is owned by {owner_name(st.st_uid)}, not you',
                           'someone planted it in your scratch dir; check the dir, remove the file, run again')


def ensure_standalone_dir(path: Path) -> Path:
    """Create (or check) a directory named outside any root (GIT_CKPT_DIR).

    The existing ancestors are taken as they are (the user chose them); the
    components we create are 0700, and the directory itself must end up a real
    directory of ours, not a symlink or someone else's pre-created dir.
    """
    path = Path(os.path.abspath(path))
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing == path:
        check_owned_dir(path)
        return path
    return ensure_private_dir(existing, path.relative_to(existing))


def check_owned_dir(path: Path, st: os.stat_result | None = None) -> None:
    st = os.lstat(path) if st is None else st
    if stat.S_ISLNK(st.st_mode):
        raise GitCkptError(f'{path} is a symlink where git-ckpt expects a directory',
                           'remove the link (someone may be redirecting your checkpoints) and run again')
    if not stat.S_ISDIR(st.st_mode):
        raise GitCkptError(f'{path} is not a directory', 'move it away and run again')
    if st.st_uid != os.geteuid():
        raise GitCkptError(
            f'{path} is owned by {owner_name(st.st_uid)}, not you',
            'someone pre-created your scratch path; remove it or choose another root')


def now_iso() -> str:
    """Now in UTC to the second, as datetime's isoformat() writes it
    ('2026-11-28T21:00:00+00:00'), without importing datetime."""
    return time.strftime('%Y-%m-%dT%H:%M:%S+00:00', time.gmtime())


def local_now_iso() -> str:
    """Now in local time to the second with its UTC offset, as
    datetime.now().astimezone().isoformat() writes it."""
    text = time.strftime('%Y-%m-%dT%H:%M:%S%z')
    return f'{text[:-2]}:{text[-2:]}'


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file + rename so readers never see half a file.
    A full filesystem raises GitCkptError naming it (and the temp file goes)."""
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp')  # unique per writer
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise _full(exc, path) or exc
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        full = _full(exc, path) if isinstance(exc, OSError) else None
        if full is not None:
            raise full from None
        raise


def _full(exc: OSError, path: Path) -> GitCkptError | None:
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    return GitCkptError(f'no space left on the filesystem of {path.parent} ({exc.strerror}: writing {path.name})',
                        FULL_DISK_FIX)


# What to do about a full scratch filesystem (or quota), wherever it is hit.
FULL_DISK_FIX = ('free space there (git ckpt status shows what uses it; git ckpt prune --keep N, '
                 'git ckpt archive --delete-source --to DIR) or choose another root (git config ckpt.root)')


def write_json_atomic(path: Path, data: dict[str, Any], *, compact: bool = False) -> None:
    """`compact` for big machine-only files (caches): no indentation, no sorting."""
    import json
    if compact:
        write_text_atomic(path, json.dumps(data, separators=(',', ':')) + '\n')
    else:
        write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + '\n')


def json_text_holds(path: Path, expected: dict[str, str | int]) -> bool:
    """True when the JSON object at `path`, as write_json_atomic writes it
    (indent 2, sorted keys), holds each key with exactly this value: checked
    on its text, without importing json (~1 ms of every setup() and hook).

    Only a yes is sure: False means "look properly" (read_json), also for
    values whose JSON spelling is not verbatim (quotes, backslashes, control
    or non-ASCII characters).  A top-level key sits at the start of a line
    indented by two spaces, which no string value can contain (JSON strings
    hold no raw newline) and no nested key has (indented deeper).
    """
    lines = []
    for key, value in expected.items():
        if isinstance(value, str):
            if not (value.isascii() and value.isprintable()) or '"' in value or '\\' in value:
                return False
            value = f'"{value}"'
        lines.append(f'\n  "{key}": {value}')
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, 'rb') as f:
            text = f.read().decode('utf-8')
    except (OSError, ValueError):
        return False
    if not (text.startswith('{\n') and text.endswith('\n}\n')):
        return False
    for line in lines:
        at = text.find(line)
        if at < 0 or text[at + len(line)] not in ',\n':
            return False
    return True


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at path, or None if missing, unreadable or corrupt."""
    import json
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_manifest(scratch_dir: Path) -> dict[str, Any] | None:
    """The manifest of a managed scratch dir; None means: not ours, touch nothing."""
    data = read_json(scratch_dir / C.MANIFEST_NAME)
    if data is None or data.get('schema') != C.MANIFEST_SCHEMA or 'worktree_id' not in data:
        return None
    return data


def is_managed(scratch_dir: Path) -> bool:
    return read_manifest(scratch_dir) is not None


def is_standalone(manifest: dict[str, Any] | None) -> bool:
    """A manifest mark_standalone_dir wrote: a GIT_CKPT_DIR dir with no root above it."""
    return manifest is not None and manifest.get('standalone') is True


def mark_standalone_dir(path: Path) -> str | None:
    """Make a GIT_CKPT_DIR dir outside any project dir managed, when nothing
    in it can be lost: it is a real directory of ours and it is empty (setup()
    just created it, or a job script did with mkdir).  A dir that already held
    files is never marked: they may be anything, and "only dirs with a
    manifest are managed" is what keeps prune from deleting them.

    Returns None when the dir is managed (marked now, or it had a manifest
    already: a worktree's dir exported to a child process), else why not.
    The usual case costs one lstat: no JSON is read.  Ranks racing here all
    see it empty (our temp files aside) and all write the same manifest.
    """
    if os.path.lexists(path / C.MANIFEST_NAME):
        return None
    if os.path.lexists(path.parent / C.REPO_MANIFEST_NAME):
        # Every managed dir of a project dir is a worktree's; this one would
        # look like an orphan to status and gc.
        return 'it is inside a project dir of the scratch root, where only worktrees have dirs'
    temp_prefix = f'.{C.MANIFEST_NAME}.'  # write_text_atomic's temp files, from a racing rank
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return 'it is not a directory of yours'
        with os.scandir(path) as entries:
            if any(not entry.name.startswith(temp_prefix) for entry in entries):
                return 'it already held files when git-ckpt first saw it'
        write_json_atomic(path / C.MANIFEST_NAME, {
            'schema': C.MANIFEST_SCHEMA,
            'standalone': True,
            'worktree_id': None,  # no worktree: never listed with a repository's dirs
            'dir': os.fspath(path),
            'created': now_iso(),
            'tool_version': C.VERSION,
        })
    except OSError as exc:
        return f'its manifest could not be written ({exc.strerror})'
    return None


def iter_project_dirs(root: Path):
    """Project dirs (one per repository) directly under the root."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith('.'):
            if (Path(entry.path) / C.REPO_MANIFEST_NAME).is_file():
                yield Path(entry.path)


def iter_managed_dirs(project_dir: Path):
    """(scratch_dir, manifest) for every managed worktree dir of a project."""
    try:
        entries = list(os.scandir(project_dir))
    except OSError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            manifest = read_manifest(Path(entry.path))
            if manifest is not None:
                yield Path(entry.path), manifest
