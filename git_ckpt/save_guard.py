"""A checkpoint save that fills the disk: no partial checkpoint, a clear error.

transformers writes `checkpoint-N/` file by file and trainer_state.json last.
When the disk fills in between, it raises whatever the writer raised (torch:
"RuntimeError: basic_ios::clear: iostream error"), and leaves a
`checkpoint-N` that `resume_from_checkpoint=True` takes for the latest one.
setup() wraps Trainer._save_checkpoint: if the save failed because the disk
(or quota) is full, the partial checkpoint it made is deleted (one that
already existed before this save is renamed `checkpoint-N.incomplete` rather
than deleted), and a GitCkptError names the filesystem, what was cleaned and
the fix; anything else is re-raised untouched.
Standard library only: this module never imports transformers.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from git_ckpt.errors import GitCkptError

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Writers that lose the errno (torch's C++ streams, safetensors' Rust) still say it in words.
FULL_WORDS = ('No space left', 'Disk quota exceeded', 'StorageFull', 'QuotaExceeded')
# With no errno and no words, a filesystem with less than this free after the failure is full.
FULL_BELOW = 1 << 20


def patch_save_checkpoint(trainer_cls: type, mark: str) -> None:
    original = trainer_cls.__dict__['_save_checkpoint']
    if getattr(original, mark, None) is not None:
        return  # already wrapped

    def _save_checkpoint(self, model, trial, *args, **kwargs):
        path = None
        if trial is None:  # hyperparameter search runs have their own dirs: message only
            path = Path(os.path.abspath(self.args.output_dir)) / f'checkpoint-{self.state.global_step}'
        existed = path is not None and os.path.lexists(path)
        try:
            return original(self, model, trial, *args, **kwargs)
        except Exception as exc:
            error = full_disk_error(exc, path, Path(os.path.abspath(self.args.output_dir)), existed)
            if error is None:
                raise
            raise error from exc

    setattr(_save_checkpoint, mark, original)
    _save_checkpoint.__qualname__ = original.__qualname__
    _save_checkpoint.__doc__ = original.__doc__
    trainer_cls._save_checkpoint = _save_checkpoint


def why_full(exc: BaseException, where: Path) -> str | None:
    """Why `exc` (raised while writing under `where`) means the disk is full, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return exc.strerror or os.strerror(exc.errno)
        if any(word in str(exc) for word in FULL_WORDS):
            return str(exc).splitlines()[0][:200]
        exc = exc.__cause__ or exc.__context__
    free = free_bytes(where)
    if free is not None and free < FULL_BELOW:
        from git_ckpt.output import human_size
        return f'{human_size(free)} free after the failed write'
    return None


def free_bytes(where: Path) -> int | None:
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        st = os.statvfs(where)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def full_disk_error(exc: Exception, path: Path | None, run_dir: Path, existed: bool) -> GitCkptError | None:
    reason = why_full(exc, path or run_dir)
    if reason is None:
        return None
    name = path.name if path is not None else 'the checkpoint'
    if path is None or not os.path.lexists(path):
        cleaned = f'no partial {name} was left'
    else:
        cleaned = _put_aside(path, existed)
    from git_ckpt.scratch import FULL_DISK_FIX
    return GitCkptError(f'no space left on the filesystem of {run_dir} while saving {name} ({reason}); {cleaned}',
                        f'{FULL_DISK_FIX}, then resume with resume_from_checkpoint=True')


def _put_aside(path: Path, existed: bool) -> str:
    """Make the partial checkpoint never look like one: deleted when this save
    made it, renamed when it was there before (never deleted on a guess)."""
    from git_ckpt.safe_delete import remove_tree
    try:
        if not existed:
            remove_tree(path)  # by fd, never following a symlink
            return f'the partial {path.name} was deleted'
        aside = path.with_name(f'{path.name}.incomplete')
        if not os.path.lexists(aside):
            os.rename(path, aside)
            return f'the partial {path.name} was renamed {aside.name}'
    except (OSError, GitCkptError) as exc:
        return f'the partial {path.name} could not be cleaned up ({exc}): delete it before resuming'
    return f'the partial {path.name} is incomplete: delete it before resuming'
