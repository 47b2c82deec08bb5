"""loose_objects.py: the guard's size bound on real loose objects, in one
process and split with a forked child (both must give the same answer)."""
from __future__ import annotations

import os

from conftest import git
from git_ckpt import constants as C
from git_ckpt import loose_objects as L

LIMIT = 10 * 1024 * 1024


def write_blobs(repo, blobs: list[bytes]) -> list[str]:
    """Loose blobs written by git itself; their oids."""
    paths = []
    for i, data in enumerate(blobs):
        path = repo / f'blob{i}'
        path.write_bytes(data)
        paths.append(os.fspath(path))
    out = git('hash-object', '-w', '--stdin-paths', cwd=repo, input='\n'.join(paths) + '\n').stdout
    return out.split()


def test_bound_clears_small_objects_and_returns_big_packed_and_missing_ones(repo):
    small = write_blobs(repo, [f'{i}\n'.encode() for i in range(20)])
    random_big = write_blobs(repo, [os.urandom(20_000)])  # a 20 KB zlib file: not proven small
    missing = ['ab' * 20, 'cd' * 20]
    objects = repo / '.git' / 'objects'
    unproven = L.loose_objects_maybe_over(small + random_big + missing, objects, LIMIT)
    assert unproven == random_big + missing
    assert L.loose_object_sizes(random_big + small[:1] + missing, objects) == {
        random_big[0]: 20_000, small[0]: 2}


def test_forked_split_answers_like_one_process(repo, forks):
    n = C.GUARD_FORK_MIN_OBJECTS + 10
    oids = write_blobs(repo, [f'file {i}\n'.encode() for i in range(n)])
    big = write_blobs(repo, [os.urandom(30_000), os.urandom(40_000)])
    missing = ['ef' * 20]
    objects = repo / '.git' / 'objects'
    # The unproven ones sit in both halves.
    everything = big[:1] + oids + missing + big[1:]
    assert L.loose_objects_maybe_over(everything, objects, LIMIT) == big[:1] + missing + big[1:]
    assert len(forks) == 1
    assert L._maybe_over(everything, objects, LIMIT) == big[:1] + missing + big[1:]


def test_no_fork_with_one_worker_or_few_objects(repo, forks, monkeypatch):
    oids = write_blobs(repo, [f'{i}\n'.encode() for i in range(C.GUARD_FORK_MIN_OBJECTS)])
    objects = repo / '.git' / 'objects'
    assert L.loose_objects_maybe_over(oids[:-1], objects, LIMIT) == []
    monkeypatch.setenv(C.ENV_WORKERS, '1')
    assert L.loose_objects_maybe_over(oids, objects, LIMIT) == []
    assert forks == []


def test_a_child_that_dies_costs_nothing_but_time(repo, monkeypatch):
    """A child that never answers (here: killed by its own work) leaves its
    half to this process."""
    oids = write_blobs(repo, [f'{i}\n'.encode() for i in range(50)] + [os.urandom(20_000)])
    objects = repo / '.git' / 'objects'
    parent = os.getpid()
    real = L._maybe_over

    def dies_in_child(oids, objects_dir, limit):
        if os.getpid() != parent:
            os._exit(3)
        return real(oids, objects_dir, limit)
    monkeypatch.setattr(L, '_maybe_over', dies_in_child)
    assert L._start_split(oids[:25], oids[25:], objects, LIMIT)() == oids[-1:]


def test_the_hook_forks_and_finds_big_blobs_in_both_halves(repo, forks, capfd):
    """The guard as the native shim runs it, in process, on a stream made by
    the shim's own lines: one blob over the limit in the child's half, one in
    this process's."""
    from test_git_index import shim_stream

    from git_ckpt import guard
    n = C.GUARD_FORK_MIN_OBJECTS + 10
    src = repo / 'src'
    src.mkdir()
    for i in range(n):
        (src / f'm{i:05}.py').write_text(f'x = {i}\n')
    big = [f'src/m{1:05}.py', f'src/m{n - 2:05}.py']  # sorted near the start (child) and the end (here)
    for path in big:
        (repo / path).write_bytes(os.urandom(30_000))
    git('add', '.', cwd=repo)
    git('config', C.CONFIG_MAX_FILE_SIZE, '20k', cwd=repo)
    stream = repo.parent / 'stream'
    stream.write_bytes(shim_stream(repo))
    saved = os.dup(0)
    try:
        with open(stream, 'rb') as f:
            os.dup2(f.fileno(), 0)
        code = guard.run([guard.STAGED_ON_STDIN], cwd=os.fspath(repo))
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    message = capfd.readouterr().err
    assert code == 1 and len(forks) == 1
    assert all(path in message for path in big) and 'src/m00002.py' not in message
