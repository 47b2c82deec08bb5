"""git plumbing for the commit guard: what is staged, and the staged objects'
sizes and contents.  Every call goes through git.py's process engine.

Standard library only, imported on every commit (see git.py on imports).
"""
from __future__ import annotations

import os

from git_ckpt import constants as C
from git_ckpt import git
from git_ckpt.records import record


class IndexEntry(record('IndexEntry', 'path mode oid')):
    """path: relative to the worktree top, surrogate-escaped like os.fsdecode;
    mode: '100644', '100755', '120000' (symlink), '160000' (submodule);
    oid: the staged blob."""
    __slots__ = ()


class Staged(record('Staged', 'paths modes oids')):
    """Index entries as three parallel lists: one IndexEntry object per path
    would cost the guard more than its checks of most paths."""
    __slots__ = ()

    def entry(self, i: int) -> IndexEntry:
        return IndexEntry(self.paths[i], self.modes[i], self.oids[i])


# Porcelain `diff --cached` compares with the empty tree on an unborn branch
# (the first commit), whatever the object format.  `--no-renames`: a rename is
# a deletion plus an addition, and only the added path matters.  -z: paths come
# verbatim (spaces, newlines, non-ASCII).  --diff-filter=d: no deletions.
STAGED_ARGS = ('diff', '--cached', '--raw', '-z', '--no-renames', '--no-abbrev', '--no-relative',
                '--no-color', '--no-ext-diff', '--ignore-submodules=none', '--diff-filter=d')


def staged_changes(cwd: str | os.PathLike[str] | None = None) -> Staged:
    """Additions and modifications staged for the next commit; deletions left out.

    The caller's GIT_INDEX_FILE is kept: `git commit -a` and `git commit PATH`
    hand hooks a temporary index.
    """
    return _parse_staged(git.run_git(*STAGED_ARGS, cwd=cwd).stdout)


def _parse_staged(stdout: str) -> Staged:
    return _staged_from_fields(stdout.split('\0')[:-1])


def _staged_from_fields(fields: list[str]) -> Staged:
    # Records: ':<old mode> <new mode> <old oid> <new oid> <status>\0<path>\0',
    # modes always six digits, oids all of one length (--no-abbrev): fixed
    # offsets, so each column is one list comprehension.
    headers, paths = fields[0::2], fields[1::2]
    if not headers:
        return Staged([], [], [])
    n = len(headers[0].split(' ')[2])   # 40 (SHA-1) or 64 (SHA-256)
    if set(map(len, headers)) == {18 + 2 * n}:  # one-letter statuses: the usual case
        return Staged(paths, [h[8:14] for h in headers], [h[16 + n:16 + 2 * n] for h in headers])
    parts = [h[1:].split(' ') for h in headers]
    return Staged(paths, [p[1] for p in parts], [p[3] for p in parts])


# The native hook's shim runs `git config` (git.CONFIG_ARGS) and `git diff`
# (STAGED_ARGS) while Python starts, and pipes their output to the guard, each
# followed by a trailer with its exit status: printf '<trailer>%d\0' "$?".
CONFIG_TRAILER = 'git-ckpt-config-exit '
STAGED_TRAILER = 'git-ckpt-diff-exit '


def parse_shim_stream(data: bytes) -> tuple[list[tuple[str, str, str]] | None, Staged | None]:
    """(config_get_all()'s answer, the Staged) from the shim's stream; either
    is None when its git failed or the stream is cut short or malformed: the
    caller then runs that git itself, which reports git's message."""
    fields = data.decode('utf-8', 'surrogateescape').split('\0')
    # The config: (scope, "key\nvalue") pairs, then its trailer.  A scope or
    # a "ckpt.key..." never starts like a trailer.
    end = 0
    while end < len(fields) and not fields[end].startswith(CONFIG_TRAILER):
        end += 2
    if end >= len(fields):
        return None, None
    config = None
    if fields[end] in (CONFIG_TRAILER + '0', CONFIG_TRAILER + '1'):  # 1: no ckpt.* key
        config = git.config_from_fields(fields[:end])
    # The diff: records of two fields, its trailer, and '' after the last NUL.
    diff = fields[end + 1:]
    if len(diff) % 2 or diff[-1] or diff[-2] != STAGED_TRAILER + '0':
        return config, None
    return config, _staged_from_fields(diff[:-2])


# Every path, relative to the top, from anywhere in the worktree.
_INDEX_ARGS = ('ls-files', '--stage', '-z', '--full-name', '--', ':/')


def index_args(filenames: list[str]) -> tuple[str, ...]:
    """`ls-files` of just these files, or of the whole index when there are
    many: git matches every index path against each pathspec (measured on
    5,000 paths: 10 pathspecs 2 ms, 100 4.5 ms, 1,000 27 ms; the whole
    index 3 ms)."""
    if len(filenames) <= C.GUARD_INDEX_PATHSPECS_MAX:
        return ('--literal-pathspecs', 'ls-files', '--stage', '-z', '--full-name', '--', *filenames)
    return _INDEX_ARGS


def entries_in_index(filenames, cwd: str | os.PathLike[str] | None = None) -> Staged:
    """(pre-commit framework) The given files as they are in the index, each
    once and in order; a file not in the index gets oid '' (checked by name)."""
    return start_entries_in_index(filenames, cwd)()


def start_entries_in_index(filenames, cwd=None):
    """entries_in_index(filenames, cwd), started now; call the result to wait for it."""
    names = list(dict.fromkeys(filenames))
    args = index_args(names)
    return git.start_parsed(args, cwd, lambda stdout: _entries_for(stdout, names),
                            lambda cwd: _entries_for(git.run_git(*args, cwd=cwd).stdout, names))


def _entries_for(stdout: str, names: list[str]) -> Staged:
    # Records: '<mode> <oid> <stage>\t<path>\0', modes always six digits and
    # oids all of one length: the path starts at a fixed offset, so a whole
    # index becomes {path: record} in one pass, and only the named files are
    # taken apart.  (A conflicted path has several records: the last counts.)
    records = stdout.split('\0')[:-1]
    if not records:
        return Staged(names, ['100644'] * len(names), [''] * len(names))
    tab = records[0].index('\t')
    by_path = {record[tab + 1:]: record for record in records}
    found = [by_path.get(name) for name in names]
    return Staged(names, [r[:6] if r else '100644' for r in found], [r[7:tab - 2] if r else '' for r in found])


def object_sizes(oids, cwd: str | os.PathLike[str] | None = None,
                 objects_dir: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Size of each object; missing ones left out.  Loose objects in
    `objects_dir` are read directly; the rest with ONE `cat-file --batch-check`."""
    from git_ckpt.loose_objects import loose_object_sizes
    oids = list(dict.fromkeys(oids))
    sizes = loose_object_sizes(oids, objects_dir) if objects_dir is not None else {}
    rest = [oid for oid in oids if oid not in sizes] if sizes else oids
    if not rest:
        return sizes
    proc = git.run_git('cat-file', '--batch-check=%(objectname) %(objectsize)',
                   cwd=cwd, input='\n'.join(rest) + '\n')
    for line in proc.stdout.splitlines():
        oid, _, size = line.partition(' ')
        if size.isdigit():
            sizes[oid] = int(size)
    return sizes


def start_staged_changes(cwd=None):
    """staged_changes(cwd), started now; call the result to wait for it."""
    return git.start_parsed(STAGED_ARGS, cwd, _parse_staged, staged_changes)


def object_contents(oids, cwd: str | os.PathLike[str] | None = None) -> dict[str, bytes]:
    """Content of a few (small) objects, with one `cat-file --batch`."""
    oids = list(dict.fromkeys(oids))
    if not oids:
        return {}
    proc = git.run_git('cat-file', '--batch', cwd=cwd, text=False,
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
