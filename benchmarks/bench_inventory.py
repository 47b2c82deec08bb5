"""Inventory speed: `git ckpt status` vs `du -s`, `git ckpt prune` vs `rm -rf`.

A synthetic scratch root (a real repository with many worktrees, each with
runs of HF-style checkpoints of 14 files) of >= 50,000 files is built once in
a temp dir.  Rows:
- status cold (no size cache) vs `du -s` of the scratch root: wall time;
- status warm (cache filled) vs `du -s`: stat + getdents syscalls counted with
  `strace -f -c` (git and Python start-up included), target <= 1/10;
- prune --keep 1 --all-worktrees vs `rm -rf` of exactly the checkpoints prune
  deletes, on fresh copies of the checkpoints each round: wall time.  Each
  round runs rm -rf, prune of never-scanned checkpoints, then status + prune,
  so both prune rows share the rm -rf samples of the same rounds.
git_ckpt is byte-compiled first (see compile_bytecode).
"""
from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import Row, hermetic_env  # noqa: E402

# What transformers' Trainer writes into a checkpoint of a causal LM with its tokenizer.
FILES = ('config.json', 'generation_config.json', 'model.safetensors', 'optimizer.pt', 'scheduler.pt',
         'rng_state.pth', 'training_args.bin', 'tokenizer.json', 'tokenizer_config.json',
         'special_tokens_map.json', 'vocab.json', 'merges.txt', 'chat_template.jinja', 'trainer_state.json')
OLD = time.time() - 86400  # older than any grace window


def _git(*args, cwd, env):
    subprocess.run(['git', *args], cwd=cwd, env=env, check=True, capture_output=True)


def _ckpt(*args, cwd, env, strace_out=None):
    cmd = ['git', 'ckpt', *args]
    if strace_out:
        cmd = ['strace', '-f', '-c', '-o', strace_out, *cmd]
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def fill_checkpoint(path: Path, step: int) -> None:
    path.mkdir(parents=True)
    for name in FILES:
        data = (f'{{"global_step": {step}, "best_model_checkpoint": null}}' if name == 'trainer_state.json'
                else 'x' * 100)
        (path / name).write_text(data)
        os.utime(path / name, (OLD, OLD))
    os.utime(path, (OLD, OLD))


def build(tmp: str, worktrees: int, runs: int, ckpts: int) -> tuple[dict, Path, list[Path], list[Path]]:
    """(env, main worktree, scratch dirs, checkpoints prune --keep 1 deletes)."""
    env = hermetic_env(tmp)
    env['PATH'] = f'{os.path.dirname(sys.executable)}{os.pathsep}{env["PATH"]}'
    main = Path(tmp) / 'proj'
    _git('init', '-q', os.fspath(main), cwd=tmp, env=env)
    _git('commit', '-q', '--allow-empty', '-m', 'init', cwd=main, env=env)
    _ckpt('init', cwd=main, env=env)
    for i in range(worktrees - 1):
        _git('worktree', 'add', '-q', f'../wt{i}', cwd=main, env=env)
    project = next(p for p in Path(env['GIT_CKPT_ROOT']).iterdir() if not p.name.startswith('.'))
    scratch_dirs = sorted(p for p in project.iterdir() if p.is_dir())
    doomed = []
    for scratch_dir in scratch_dirs:
        for r in range(runs):
            for c in range(1, ckpts + 1):
                path = scratch_dir / f'run{r}' / f'checkpoint-{c * 500}'
                fill_checkpoint(path, c * 500)
                if c < ckpts:
                    doomed.append(path)
    return env, main, scratch_dirs, doomed


def drop_cache(root: str) -> None:
    shutil.rmtree(os.path.join(root, '.git-ckpt', 'inventory'), ignore_errors=True)


def count_syscalls(strace_file: str) -> int:
    """stat-family + getdents calls in an `strace -c` summary."""
    total = 0
    for line in Path(strace_file).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and ('stat' in fields[-1] or 'getdents' in fields[-1]):
            try:
                total += int(fields[3])
            except ValueError:
                pass
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child processes) of one call."""
    c = _children_cpu()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t, _children_cpu() - c


def _median_pair(subject, baseline, repeats, setup=None):
    """Medians of (wall subject, wall baseline, cpu subject, cpu baseline).
    CPU time (user + system of the child processes) is reported next to wall
    time because on a shared machine wall time also measures the neighbours."""
    s, b, s_cpu, b_cpu = [], [], [], []
    for _ in range(repeats):
        for fn, wall, cpu in ((subject, s, s_cpu), (baseline, b, b_cpu)):
            if setup:
                setup()
            w, c = _timed(fn)
            wall.append(w)
            cpu.append(c)
    return (statistics.median(s), statistics.median(b), statistics.median(s_cpu), statistics.median(b_cpu))


def compile_bytecode() -> None:
    """Byte-compile the git_ckpt that `git ckpt` runs, as pip does on install.
    An editable install run with PYTHONDONTWRITEBYTECODE=1 (set in some shells
    and CI images) would otherwise recompile every module on every call, a
    start-up cost no installed copy pays."""
    import compileall

    import git_ckpt
    compileall.compile_dir(os.path.dirname(git_ckpt.__file__), quiet=1)


def rows(quick: bool) -> list[Row]:
    worktrees, runs, ckpts = (25, 4, 36)  # 3,600 checkpoints x 14 files = 50,400 files
    repeats = 3 if quick else 9
    out = []
    # BENCH_INVENTORY_TMP=/dev/shm builds the tree on a tmpfs: no disk, so the
    # rows measure git-ckpt's own cost without the disk's (and neighbours') noise.
    where = os.environ.get('BENCH_INVENTORY_TMP') or None
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix='bench-inventory-', dir=where) as tmp:
        env, main, scratch_dirs, doomed = build(tmp, worktrees, runs, ckpts)
        root = env['GIT_CKPT_ROOT']
        nfiles = sum(len(files) for _, _, files in os.walk(root))
        fs = f'{nfiles} files, {_fs_type(root)}'
        du = ['du', '-s', root]

        def status():
            _ckpt('status', cwd=main, env=env)

        def du_s():
            subprocess.run(du, check=True, stdout=subprocess.DEVNULL)

        cold, base, cold_cpu, base_cpu = _median_pair(status, du_s, repeats, setup=lambda: drop_cache(root))
        out.append(Row('status, cold cache, vs du -s', cold, base, 2.0, fs))
        out.append(Row('status, cold cache, vs du -s: CPU time (user+sys)', cold_cpu, base_cpu, None, fs))

        status()  # fill the cache
        st_file, du_file = os.path.join(tmp, 'strace-status'), os.path.join(tmp, 'strace-du')
        _ckpt('status', cwd=main, env=env, strace_out=st_file)
        subprocess.run(['strace', '-f', '-c', '-o', du_file, *du], check=True, stdout=subprocess.DEVNULL)
        out.append(Row('status, warm cache, vs du -s: stat+getdents syscalls', count_syscalls(st_file),
                       count_syscalls(du_file), 0.1, 'strace -f -c', unit='calls'))
        warm, base, _, _ = _median_pair(status, du_s, repeats)
        out.append(Row('status, warm cache, vs du -s', warm, base, None, 'wall time'))

        def refill():
            for path in doomed:
                if not path.exists():
                    fill_checkpoint(path, int(path.name.split('-')[1]))
            os.sync()  # so the timed deletes do not compete with writeback of the refill

        def refill_and_status():
            refill()
            status()  # the usual order: look, then prune; fills the size cache

        def prune():
            _ckpt('prune', '--keep', '1', '--all-worktrees', '--grace', '0', cwd=main, env=env)

        def rm_rf():
            subprocess.run(['rm', '-rf', *map(os.fspath, doomed)], check=True)

        what = f'{len(doomed)} checkpoints, {len(doomed) * len(FILES)} files, {_fs_type(root)}'
        # One rotation per repeat: rm -rf, prune of never-scanned checkpoints, status then
        # prune.  Both prune rows are compared with the same rm -rf samples, taken between
        # them, so a slow phase of the disk (ext4 with discard: TRIMs at journal commits)
        # hits all three instead of one row's baseline.
        samples = {name: ([], []) for name in ('rm', 'never scanned', 'after a status')}
        for _ in range(max(3, repeats // 2)):
            for name, setup, fn in (('rm', refill, rm_rf), ('never scanned', refill, prune),
                                    ('after a status', refill_and_status, prune)):
                setup()
                wall, cpu = _timed(fn)
                samples[name][0].append(wall)
                samples[name][1].append(cpu)
        rm_wall, rm_cpu = (statistics.median(v) for v in samples['rm'])
        for label in ('never scanned', 'after a status'):
            pr_wall, pr_cpu = (statistics.median(v) for v in samples[label])
            out.append(Row(f'prune --keep 1 --all-worktrees vs rm -rf of the same checkpoints, {label}',
                           pr_wall, rm_wall, 1.2, what))
            out.append(Row(f'prune vs rm -rf, {label}: CPU time (user+sys)', pr_cpu, rm_cpu, None, what))
    return out


def _fs_type(path: str) -> str:
    from git_ckpt.disk_usage import fs_type
    return fs_type(path) or 'unknown fs'
