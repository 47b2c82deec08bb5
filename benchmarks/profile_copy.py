"""Where the seconds of a cross-filesystem archive go (not a benchmark row).

1. The cost of each step of checksums.copy_file on its own, as CPU time of
   one thread, over the same files: read the source, sha256, write the
   destination, read it back, memcmp.  Their sum is the CPU an archive needs;
   `cp -a` needs read + write.
2. transfer.transfer() and `cp -a`, with the CPU of every thread and the time
   spent waiting in fsync, and from those the wall time it would take on two
   idle cores (the longest thread plus the serial rest).  On a loaded machine
   the measured wall time says little; the CPU and this estimate hold.

Run: python benchmarks/profile_copy.py [--size MiB] [--files N] [--repeats N]
(from a checkout, /tmp and /dev/shm on different filesystems)
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent.parent))
from git_ckpt import checksums, transfer  # noqa: E402

MiB = 1 << 20


def steps(src: Path, dest: Path) -> dict[str, float]:
    """CPU seconds of each step of copy_file, one thread, every file of src."""
    cost = dict.fromkeys(['read source', 'sha256', 'write', 'read back', 'memcmp'], 0.0)
    clock = time.thread_time
    dest.mkdir(exist_ok=True)
    for name in sorted(os.listdir(src)):
        buf, back = bytearray(checksums.COPY_BUF_SIZE), bytearray(checksums.COPY_BUF_SIZE)
        digest = hashlib.sha256()
        s = os.open(src / name, os.O_RDONLY)
        d = os.open(dest / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        offset = 0
        while True:
            t = clock(); n = os.preadv(s, [buf], offset); cost['read source'] += clock() - t
            if not n:
                break
            t = clock(); digest.update(memoryview(buf)[:n]); cost['sha256'] += clock() - t
            t = clock(); os.pwrite(d, memoryview(buf)[:n], offset); cost['write'] += clock() - t
            t = clock(); os.preadv(d, [back], offset); cost['read back'] += clock() - t
            t = clock(); assert buf == back; cost['memcmp'] += clock() - t
            offset += n
        os.close(s)
        os.close(d)
    shutil.rmtree(dest)
    return cost


class Lanes:
    """CPU per thread and wall time in fsync per thread (hooks installed once;
    reset() before each run)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = collections.defaultdict(float)
        self.fsync: dict[str, float] = collections.defaultdict(float)
        run, fsync, lanes = threading.Thread.run, os.fsync, self

        def timed_run(thread):
            try:
                run(thread)
            finally:
                lanes.cpu[thread.name] += time.thread_time()

        def timed_fsync(fd):
            t = time.perf_counter()
            fsync(fd)
            lanes.fsync[threading.current_thread().name] += time.perf_counter() - t

        threading.Thread.run, os.fsync = timed_run, timed_fsync

    def reset(self) -> None:
        self.cpu.clear()
        self.fsync.clear()

    def two_core_wall(self, main_cpu: float) -> float:
        main = main_cpu + self.fsync.get('MainThread', 0.0)
        hashers = sum(v for k, v in self.cpu.items() if k == 'git-ckpt-hash')
        copiers = [v + self.fsync.get(k, 0.0) for k, v in self.cpu.items() if k.startswith('git-ckpt-copy')]
        if copiers:                       # files side by side: main waits for them
            return main + max(copiers)
        return max(main, hashers)         # one file at a time, maybe pipelined


LANES = Lanes()


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=1024, help='MiB in all (default 1024)')
    parser.add_argument('--files', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    disk = Path(tempfile.mkdtemp(prefix='profile-copy-'))
    shm = Path(tempfile.mkdtemp(prefix='profile-copy-', dir='/dev/shm'))
    try:
        for label, base_src, base_dest in (('disk -> tmpfs', disk, shm), ('tmpfs -> disk', shm, disk)):
            src = base_src / 'src'
            src.mkdir()
            for i in range(args.files):
                (src / f'shard-{i}.bin').write_bytes(os.urandom(args.size * MiB // args.files))
            dest = base_dest / 'dest'
            best: dict[str, float] = {}
            for _ in range(args.repeats):
                for k, v in steps(src, dest).items():
                    best[k] = min(best.get(k, v), v)
            print(f'\n{label}, {args.size} MiB in {args.files} files: CPU ms per step (min of {args.repeats})')
            for k, v in best.items():
                print(f'  {k:12s} {v * 1000:7.0f}')
            print(f'  {"sum":12s} {sum(best.values()) * 1000:7.0f}   (cp -a needs read + write: '
                  f'{(best["read source"] + best["write"]) * 1000:.0f})')
            rows = collections.defaultdict(list)
            lanes = LANES
            for _ in range(args.repeats):
                for what in ('cp -a + fsync', 'transfer()'):
                    subprocess.run(['sync'])
                    lanes.reset()
                    c0, m0, t0 = children_cpu(), time.thread_time(), time.perf_counter()
                    if what == 'transfer()':
                        transfer.transfer(src, dest, progress=False)
                        estimate = lanes.two_core_wall(time.thread_time() - m0)
                    else:
                        subprocess.run(['cp', '-a', src, dest], check=True)
                        t = time.perf_counter()
                        subprocess.run(['sh', '-c', 'find "$0" -type f -exec sync {} +', dest], check=True)
                        estimate = children_cpu() - c0 + time.perf_counter() - t
                    rows[what].append((estimate, time.perf_counter() - t0))
                    shutil.rmtree(dest)
            for what, runs in rows.items():
                print(f'  {what:14s} two idle cores: ~{min(r[0] for r in runs) * 1000:.0f} ms   '
                      f'(measured wall here: {min(r[1] for r in runs) * 1000:.0f} ms, '
                      f'load {os.getloadavg()[0]:.1f})')
            shutil.rmtree(src)
    finally:
        shutil.rmtree(disk, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
