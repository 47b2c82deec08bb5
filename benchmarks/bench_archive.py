"""Archive and gc speed.

- same filesystem: `git ckpt archive` of a 1 GiB scratch dir vs a 10 MiB one
  (same file count): a rename, so the ratio stays ~1 however big it gets.
- across filesystems (/tmp <-> the /dev/shm tmpfs): `git ckpt archive --to`
  (copy, sha256 manifest, verification by re-reading, fsync) vs `cp -a`.
  Towards /tmp (a disk) the baseline is `cp -a` then an fsync of every copied
  file and dir (`sync PATH...`), because git-ckpt must make the archive
  durable before a source may be deleted and plain `cp -a` makes nothing
  durable; the row without the sync is kept for comparison.
- `git ckpt gc --dry-run` listing 100 orphans with their sizes vs `du -s`.
The CLI runs with its bytecode cached (a pycache under the benchmark's temp
dir, even when PYTHONDONTWRITEBYTECODE is set), as after any normal install:
otherwise every run would also recompile git_ckpt from source (~50-90 ms).
Run: python benchmarks/run.py archive   (--quick: smaller data, fewer repeats)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import Row, compare, hermetic_env

SHM = Path('/dev/shm')
MiB = 1 << 20


def cli_env(tmp: str) -> dict[str, str]:
    """hermetic_env, with git_ckpt's bytecode cached in `tmp` (written once,
    then read) rather than compiled on every run."""
    env = hermetic_env(tmp)
    env.pop('PYTHONDONTWRITEBYTECODE', None)
    env['PYTHONPYCACHEPREFIX'] = os.path.join(tmp, 'pycache')
    return env


def _git(env, *args, cwd=None) -> str:
    return subprocess.run(['git', *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def _repo(base: Path, name: str, env: dict) -> tuple[Path, Path]:
    """A repo with git-ckpt initialised and one linked worktree; (worktree, scratch dir)."""
    repo = base / name
    _git(env, 'init', '-q', repo)
    (repo / 'README').write_text('x\n')
    _git(env, 'add', 'README', cwd=repo)
    _git(env, 'commit', '-q', '-m', 'init', cwd=repo)
    _git(env, 'ckpt', 'init', cwd=repo)
    wt = base / f'{name}-exp'
    _git(env, 'worktree', 'add', '-q', wt, cwd=repo)
    return wt, Path(_git(env, 'ckpt', 'path', cwd=wt))


def _fill(scratch: Path, total: int, files: int = 4) -> None:
    chunk = os.urandom(min(total // files, 64 * MiB))
    for step in range(files):
        ck = scratch / 'run1' / f'checkpoint-{step + 1}'
        ck.mkdir(parents=True)
        with open(ck / 'model.safetensors', 'wb') as f:
            left = total // files
            while left > 0:
                f.write(chunk[:left])
                left -= len(chunk)
        (ck / 'trainer_state.json').write_text(json.dumps({'global_step': step + 1}))


def _same_fs_rows(base: Path, env: dict, quick: bool) -> list[Row]:
    big_size = (128 if quick else 1024) * MiB
    small_wt, small = _repo(base, 'small', env)
    big_wt, big = _repo(base, 'big', env)
    _fill(small, 10 * MiB)
    _fill(big, big_size)
    archive_dir = Path(env['GIT_CKPT_ROOT']) / 'archive'

    def put_back() -> None:
        # Undo the previous archive (a rename back) so every run archives the same tree.
        for entry in archive_dir.glob('*') if archive_dir.exists() else []:
            source = Path(json.loads((entry / '.git-ckpt-archive.json').read_text())['source'])
            shutil.rmtree(source)   # the empty dir re-created for the live worktree
            os.rename(entry, source)
            os.unlink(source / '.git-ckpt-archive.json')

    times: dict[str, list[float]] = {'big': [], 'small': []}
    for _ in range(3 if quick else 7):   # interleaved, so drift hits both
        for label, wt in (('big', big_wt), ('small', small_wt)):
            put_back()
            times[label].append(_time(['git', 'ckpt', 'archive'], cwd=wt, env=env))
    put_back()
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return [Row(f'same-fs archive: {big_size // MiB} MiB vs 10 MiB (4 files each)',
                med['big'], med['small'], target=1.5, note='a rename: flat as the size grows')]


def _time(cmd, **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def _cross_fs_rows(base: Path, quick: bool) -> list[Row]:
    if os.stat(SHM).st_dev == os.stat(base).st_dev:
        return []
    size = (256 if quick else 1024) * MiB
    rows = []
    shm_base = Path(tempfile.mkdtemp(prefix='bench-archive-', dir=SHM))
    try:
        for label, root_parent, dest_parent in (('/tmp -> /dev/shm', base, shm_base),
                                                ('/dev/shm -> /tmp', shm_base, base)):
            tmp = Path(tempfile.mkdtemp(dir=root_parent))
            env = cli_env(os.fspath(tmp))
            wt, scratch = _repo(tmp, 'x', env)
            _fill(scratch, size, files=8)
            dest = dest_parent / f'archive-{tmp.name}'
            copy = dest_parent / f'cp-{tmp.name}'

            def clean() -> None:
                for path in (dest, copy):
                    if path.exists():
                        subprocess.run(['rm', '-rf', path], check=True)
                subprocess.run(['sync'], check=True)

            archive = ['git', 'ckpt', 'archive', '--to', os.fspath(dest)]
            subprocess.run([*archive, '--dry-run'], env=env, cwd=wt, check=True, capture_output=True)
            cp = ['cp', '-a', os.fspath(scratch), os.fspath(copy)]
            subject, baseline = compare(archive, cp, repeats=3 if quick else 5, setup=clean, env=env, cwd=wt)
            clean()
            rows.append(Row(f'cross-fs archive {size // MiB} MiB, {label}: vs cp -a', subject, baseline,
                            target=None if label.endswith('/tmp') else 1.5,
                            note='git ckpt archive: copy + sha256 + read-back verify + fsync'))
            if label.endswith('/tmp'):
                # The same durability as the archive: fsync every copied file and dir.
                cp_sync = ['sh', '-c', 'cp -a "$0" "$1" && find "$1" -exec sync {} +', *cp[2:]]
                subject, baseline = compare(archive, cp_sync, repeats=3 if quick else 5, setup=clean,
                                            env=env, cwd=wt)
                clean()
                rows.append(Row(f'cross-fs archive {size // MiB} MiB, {label}: vs cp -a + sync', subject,
                                baseline, target=1.5, note='both fsync every file: the fair baseline'))
            if label.startswith('/tmp'):
                # The engine alone, without the CLI's startup (python, click, git calls).
                from git_ckpt import transfer
                subject, baseline = compare(lambda: transfer.transfer(scratch, dest, progress=False),
                                            ['cp', '-a', os.fspath(scratch), os.fspath(copy)],
                                            repeats=3 if quick else 5, setup=clean)
                clean()
                rows.append(Row(f'transfer.transfer() {size // MiB} MiB, {label}: vs cp -a', subject,
                                baseline, target=1.5, note='in-process, same work as above'))
            shutil.rmtree(tmp)
    finally:
        shutil.rmtree(shm_base, ignore_errors=True)
    return rows


def _gc_rows(base: Path, env: dict, quick: bool) -> list[Row]:
    wt, scratch = _repo(base, 'many', env)
    project = scratch.parent
    n = 100
    for i in range(n):
        # An orphan is a managed dir whose worktree id no admin dir carries.
        leaf = project / f'old{i:03d}-{i:08x}'
        ck = leaf / 'run1' / 'checkpoint-1'
        ck.mkdir(parents=True, mode=0o700)
        (ck / 'model.safetensors').write_bytes(b'\0' * 4096)
        (ck / 'trainer_state.json').write_text('{"global_step": 1}')
        manifest = json.loads((scratch / '.git-ckpt.json').read_text())
        manifest.update(worktree=f'/gone/old{i:03d}', worktree_id=leaf.name)
        (leaf / '.git-ckpt.json').write_text(json.dumps(manifest))
    out = subprocess.run(['git', 'ckpt', 'gc', '--dry-run'], cwd=wt, env=env, check=True,
                         capture_output=True, text=True).stdout
    assert f'{n} orphaned scratch dirs' in out, out
    subject, baseline = compare(['git', 'ckpt', 'gc', '--dry-run'], ['du', '-s', os.fspath(project)],
                                repeats=3 if quick else 9, env=env, cwd=wt)
    return [Row(f'gc --dry-run, {n} orphans: vs du -s', subject, baseline,
                note='lists each with size and checkpoints')]


def rows(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix='bench-archive-') as tmp:
        base = Path(tmp)
        env = cli_env(tmp)
        out = _same_fs_rows(base, env, quick)
        out += _gc_rows(base, env, quick)
        out += _cross_fs_rows(base, quick)
    return out
