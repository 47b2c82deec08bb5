"""Copying several files at once (git_ckpt.parallel) inside transfer.transfer:
the same verified copy as one file at a time, and a failure in one thread
stops the other with the source intact."""
from __future__ import annotations

import json
import os
import threading
import time

import pytest

from git_ckpt import parallel, transfer
from git_ckpt.errors import GitCkptError
from test_transfer import make_tree, shm_dir, tree_digest  # noqa: F401  (shm_dir: a fixture)


@pytest.mark.parametrize('workers', [1, 2], ids=['one-file-at-a-time', 'two-files-at-once'])
def test_parallel_and_sequential_copies_are_the_same_verified_copy(shm_dir, tmp_path, monkeypatch,
                                                                    workers):
    """Files are copied two at a time when there are cores for it; force each
    plan so both are proven on every run (hard links, symlinks and modes too)."""
    monkeypatch.setattr(parallel, 'WORKERS', workers)
    src = make_tree(shm_dir / 'src', tmp_path / 'outside.txt')
    for i, size in enumerate([5 << 20, 3 << 20, (2 << 20) + 7, 1, 0]):
        (src / 'run1' / f'shard-{i}.bin').write_bytes(os.urandom(size))
    before = tree_digest(src)
    dest = tmp_path / 'dest'
    result = transfer.transfer(src, dest, progress=False)
    assert result.method == 'copy'
    assert transfer.verify(dest) == []
    copied = tree_digest(dest)
    copied.pop(transfer.MANIFEST)
    assert copied == before
    manifest = json.loads((dest / transfer.MANIFEST).read_text())
    for rel, record in manifest['files'].items():
        assert record['sha256'] == before[rel]
    assert os.stat(dest / 'run1' / 'model-hardlink.safetensors').st_ino == \
        os.stat(dest / 'run1' / 'checkpoint-10' / 'model.safetensors').st_ino
    assert tree_digest(src) == before


def test_a_file_that_cannot_be_written_fails_the_copy_with_the_source_intact(shm_dir, tmp_path, monkeypatch):
    """A failure in one copying thread stops the whole transfer: nothing is
    renamed into place, the source is untouched, and a rerun (once the
    obstacle is gone) completes."""
    monkeypatch.setattr(parallel, 'WORKERS', 2)
    src = shm_dir / 'src'
    src.mkdir()
    for i in range(6):
        (src / f'shard-{i}.bin').write_bytes(os.urandom((6 - i) << 20))
    before = tree_digest(src)
    dest = tmp_path / 'dest'
    partial = tmp_path / 'dest.partial'
    # A partial of this very source whose shard-1.bin is a directory: the
    # copy of that one file fails with EISDIR, the other thread is stopped.
    partial.mkdir()
    (partial / transfer.JOURNAL).write_text(json.dumps({'source': os.fspath(src)}) + '\n')
    (partial / 'shard-1.bin').mkdir()
    with pytest.raises(GitCkptError, match='cannot transfer'):
        transfer.transfer(src, dest, progress=False)
    assert not dest.exists()
    assert transfer.verify(partial)            # never good
    assert tree_digest(src) == before
    os.rmdir(partial / 'shard-1.bin')
    transfer.transfer(src, dest, progress=False)
    assert transfer.verify(dest) == []


def test_run_parallel_stops_the_other_thread_at_its_next_block(monkeypatch):
    """parallel.run_parallel on its own: when one job fails, a job running in
    the other thread is cancelled at its next progress call, and the first
    failure is what the caller sees."""

    class Job:
        def __init__(self, name, size):
            self.name, self.size = name, size

    started = threading.Event()
    blocks_after_failure = []
    failed = threading.Event()

    def work(job, advance, pipeline):
        assert pipeline is False            # never a pipeline inside two threads
        if job.name == 'long':
            started.set()
            for _ in range(10_000):
                advance(1)                  # raises once the other job failed
                if failed.is_set():
                    blocks_after_failure.append(1)
                time.sleep(0.001)
            raise AssertionError('the long job was never cancelled')
        started.wait(10)
        failed.set()
        raise ValueError('disk on fire')

    jobs = [Job('long', 100), Job('bad', 90), Job('never', 1)]
    seen = []
    monkeypatch.setattr(parallel, 'WORKERS', 2)
    with pytest.raises(ValueError, match='disk on fire'):
        parallel.run_parallel(jobs, lambda j, a, p: (seen.append(j.name), work(j, a, p)), lambda n: None)
    assert len(blocks_after_failure) <= 1     # at most the block in flight
    assert 'never' not in seen                # no new job starts after a failure
