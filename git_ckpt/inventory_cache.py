"""Size cache for complete checkpoints, so a warm `status` does not stat every file.

A complete checkpoint does not change, but on Lustre/GPFS every stat is a
network round trip, so walking thousands of files per `status` is slow.  The
cache maps a checkpoint (path relative to its scratch dir) to its measured
size and to the key it was measured under: (inode, mtime_ns, ctime_ns) of the
checkpoint dir and of every directory below it, in walk order.  Any entry
added, removed or renamed anywhere in the tree changes some directory's
mtime/ctime, and replacing the checkpoint dir changes its inode, so the entry
is re-measured.  Validating costs one lstat per *directory*, not per file.
Not detected: a file rewritten in place under the same name (checkpoints are
written once; HF writes trainer_state.json last).  That is why a checkpoint
whose trainer_state.json does not parse (yet: HF creates it empty, then
writes it) is never cached.

The cache file lives in the scratch root's state dir, is written atomically
(temp + rename), and a corrupt or foreign file is ignored and rebuilt.
Standard library only.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.scratch import ensure_private_dir, write_json_atomic

TYPE_CHECKING = False  # typing costs ~3 ms to import, on every `git ckpt status`
if TYPE_CHECKING:
    from typing import Any


class SizeCache:
    """One scratch dir's cache: load once, look up/store per checkpoint, save once."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, dict[str, Any]] = {}
        self._used: set[str] = set()
        self._dirty = False
        self._loaded = False

    @classmethod
    def for_scratch_dir(cls, scratch_dir: Path) -> SizeCache:
        """The default cache of a managed scratch dir; a no-op cache otherwise."""
        from git_ckpt.state import state_file
        try:
            path = state_file(scratch_dir, C.INVENTORY_CACHE_DIR, '.json', create=False)
        except (GitCkptError, OSError):
            path = None
        return cls(path)

    def load(self) -> None:
        if self._loaded or self.path is None:
            self._loaded = True
            return
        self._loaded = True
        try:
            with open(self.path, 'rb') as f:
                data = json.load(f)
        except (OSError, ValueError):
            return  # missing or corrupt: start empty, rebuilt on save
        if (isinstance(data, dict) and data.get('schema') == C.INVENTORY_CACHE_SCHEMA
                and isinstance(data.get('entries'), dict)):
            self._entries = data['entries']
        else:
            self._dirty = True

    def is_cold(self) -> bool:
        """Nothing cached: no cache file (when not loaded yet), or none loaded."""
        if self._loaded or self.path is None:
            return not self._entries
        return not os.path.exists(self.path)

    def lookup(self, rel: str, parent_fd: int, name: str, top: os.stat_result) -> dict[str, Any] | None:
        """The cached measurement of checkpoint `rel` if its key still holds.

        `top` is the lstat of the checkpoint dir (already done by the caller);
        subdirs are lstat'ed relative to `parent_fd`, parents before children,
        so a subdir replaced by a symlink fails at its own entry first.
        """
        self.load()
        entry = self._entries.get(rel)
        if not _well_formed(entry):
            return None
        dirs = entry['dirs']
        if dirs[0][1:] != [top.st_ino, top.st_mtime_ns, top.st_ctime_ns]:
            return None
        for sub, ino, mtime_ns, ctime_ns in dirs[1:]:
            try:
                st = os.stat(f'{name}/{sub}', dir_fd=parent_fd, follow_symlinks=False)
            except OSError:
                return None
            if (st.st_ino, st.st_mtime_ns, st.st_ctime_ns) != (ino, mtime_ns, ctime_ns) or not _is_dir(st):
                return None
        self._used.add(rel)
        return entry

    def store(self, rel: str, entry: dict[str, Any]) -> None:
        self._entries[rel] = entry
        self._used.add(rel)
        self._dirty = True

    def save(self) -> None:
        """Write back (only entries seen in this scan: stale ones are dropped)."""
        if self.path is None:
            return
        stale = set(self._entries) - self._used
        if not self._dirty and not stale:
            return
        entries = {rel: self._entries[rel] for rel in self._used if rel in self._entries}
        try:
            # The state dirs are created private and checked for ownership.
            ensure_private_dir(self.path.parents[3], self.path.parent.relative_to(self.path.parents[3]))
            write_json_atomic(self.path, {'schema': C.INVENTORY_CACHE_SCHEMA, 'entries': entries},
                              compact=True)
        except (OSError, GitCkptError):
            return  # a read-only, full or foreign root: work without a cache
        self._dirty = False


def _is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)


def _well_formed(entry: Any) -> bool:
    return (
        isinstance(entry, dict) and isinstance(entry.get('dirs'), list) and entry['dirs']
        and all(isinstance(d, list) and len(d) == 4 for d in entry['dirs'])
        and isinstance(entry.get('size'), int) and isinstance(entry.get('mtime'), (int, float))
        and isinstance(entry.get('links'), list)
    )
