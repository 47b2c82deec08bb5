"""save_guard: a checkpoint save that fills the disk leaves nothing that looks
like a checkpoint and raises a clear error.  A real full tmpfs; a small class
with transformers' `_save_checkpoint` signature stands in for the Trainer (the
real Trainer runs in tests/faults/test_full_disk.py)."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from git_ckpt.errors import GitCkptError
from git_ckpt.save_guard import patch_save_checkpoint


class Saver:
    """Writes checkpoint-<step>/ file by file, trainer_state.json last, like transformers."""

    def __init__(self, output_dir: Path, step: int, error: Exception | None = None) -> None:
        self.args = SimpleNamespace(output_dir=os.fspath(output_dir))
        self.state = SimpleNamespace(global_step=step)
        self.error = error

    def _save_checkpoint(self, model, trial):
        ck = Path(self.args.output_dir) / f'checkpoint-{self.state.global_step}'
        ck.mkdir(parents=True, exist_ok=True)
        if self.error is not None:
            raise self.error
        (ck / 'model.safetensors').write_bytes(b'w' * (3 << 20))   # more than the disk holds
        (ck / 'trainer_state.json').write_text('{}')


patch_save_checkpoint(Saver, '_git_ckpt_original')


@pytest.fixture
def out(tmpfs_mount) -> Path:
    return tmpfs_mount('full', size='1m') / 'out'


def test_a_full_disk_deletes_the_partial_checkpoint_and_says_so(out):
    with pytest.raises(GitCkptError) as info:
        Saver(out, 2)._save_checkpoint(None, None)
    message = str(info.value)
    assert message.startswith(f'no space left on the filesystem of {out} while saving checkpoint-2 (')
    assert 'the partial checkpoint-2 was deleted' in message
    assert 'resume_from_checkpoint=True' in message and 'git ckpt prune' in message
    assert isinstance(info.value.__cause__, OSError)
    assert os.listdir(out) == []


def test_a_checkpoint_that_existed_before_is_renamed_not_deleted(out):
    (out / 'checkpoint-2').mkdir(parents=True)
    (out / 'checkpoint-2' / 'notes.txt').write_text('from an earlier run')
    with pytest.raises(GitCkptError, match='renamed checkpoint-2.incomplete'):
        Saver(out, 2)._save_checkpoint(None, None)
    assert os.listdir(out) == ['checkpoint-2.incomplete']
    assert (out / 'checkpoint-2.incomplete' / 'notes.txt').read_text() == 'from an earlier run'


def test_a_writer_that_loses_the_errno_is_recognised_by_the_free_space(out):
    out.mkdir()
    with open(out.parent / 'filler', 'wb') as f:
        try:
            f.write(b'\0' * (2 << 20))
        except OSError:
            pass
    torch_like = RuntimeError('basic_ios::clear: iostream error')
    with pytest.raises(GitCkptError, match='free after the failed write') as info:
        Saver(out, 4, error=torch_like)._save_checkpoint(None, None)
    assert info.value.__cause__ is torch_like
    assert os.listdir(out) == []


def test_other_errors_are_raised_untouched(tmp_path):
    error = ValueError('a bug in the model')
    with pytest.raises(ValueError) as info:
        Saver(tmp_path / 'out', 2, error=error)._save_checkpoint(None, None)
    assert info.value is error
    assert (tmp_path / 'out' / 'checkpoint-2').is_dir()   # not ours to judge: left as is
