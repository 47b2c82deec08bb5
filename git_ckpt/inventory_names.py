"""What a checkpoint dir is called, and what its trainer_state.json says.

The small pieces of the inventory that inventory_cold uses too.
Standard library only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from git_ckpt import constants as C


def parse_checkpoint_name(name: str) -> tuple[str, int | None] | None:
    """('hf', step) / ('tmp', None) for HF checkpoint dir names, else None.
    Raises ValueError for `checkpoint-<not a number>`."""
    if name.startswith(C.TMP_CHECKPOINT_PREFIX):
        return 'tmp', None
    if name.startswith(C.CHECKPOINT_PREFIX):
        suffix = name[len(C.CHECKPOINT_PREFIX):]
        if not (suffix.isascii() and suffix.isdigit()):
            raise ValueError(suffix)
        return 'hf', int(suffix)
    return None


def read_trainer_state(dir_fd: int, name: str) -> tuple[dict | None, str | None]:
    """(state, None) or (None, why) for <name>/trainer_state.json under dir_fd."""
    try:
        # O_NONBLOCK: a FIFO by that name must not hang the scan (a regular file ignores it).
        fd = os.open(f'{name}/{C.TRAINER_STATE_NAME}', os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f'{C.TRAINER_STATE_NAME} unreadable: {exc.strerror}'
    chunks = []
    try:
        # 64 KiB at a time: a bigger buffer is above malloc's mmap threshold, and
        # mapping and unmapping one per file cost ~30 us each (a cold scan reads
        # thousands).  A short read of a regular file is its end.
        while True:
            chunks.append(os.read(fd, 65536))
            if len(chunks[-1]) < 65536:
                break
    except OSError as exc:
        return None, f'{C.TRAINER_STATE_NAME} unreadable: {exc.strerror}'
    finally:
        os.close(fd)
    data = b''.join(chunks)
    try:
        # Decoding first skips json's encoding sniffing (measurable over thousands
        # of checkpoints); anything else (BOM, UTF-16, whitespace) goes the sniffing way.
        state = json.loads(data.decode('utf-8') if data[:1] == b'{' else data)
    except ValueError:
        return None, f'{C.TRAINER_STATE_NAME} is corrupt (not JSON)'
    if not isinstance(state, dict):
        return None, f'{C.TRAINER_STATE_NAME} is corrupt (not an object)'
    return state, None


def child_path(parent: Path, name: str) -> Path:
    """`parent / name` for a name read from a directory (one component): the
    shortcut Path.iterdir itself uses, which skips re-parsing the parent
    (5x cheaper; it counts per checkpoint).  Plain `/` where it is missing."""
    make = getattr(parent, '_make_child_relpath', None)
    return make(name) if make is not None else parent / name


def work_dir(dir_fd: int, name: str) -> bool:
    """A dir git-ckpt is working in: a restore's staging dir, a checkpoint being
    deleted, a copy in progress (`.partial` with a transfer journal).  What is in
    it is not a run: prune must never delete in it (after a kill, a staging dir
    may hold the only copy of an archive)."""
    if name.startswith((C.RESTORE_STAGING_PREFIX, C.PRUNE_TRASH_PREFIX)):
        return True
    if not name.endswith(C.PARTIAL_SUFFIX):
        return False
    try:
        os.stat(f'{name}/{C.TRANSFER_JOURNAL_NAME}', dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False
