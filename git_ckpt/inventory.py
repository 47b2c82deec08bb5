"""What is in a scratch dir: runs, their checkpoints, sizes on disk.

The one inventory used by status, prune, archive and gc.  A *run* is a
directory whose children are checkpoints: HF `checkpoint-<step>` (the step is
an integer: checkpoint-9900 sorts before checkpoint-10000), in-progress
`tmp-checkpoint-*`, or ART `<run>/checkpoints/<step>`.

Sizes are allocated blocks (like `du`), hard links counted once, symlinks
never followed.  Directories are opened with O_NOFOLLOW and walked by fd, so
a symlink planted anywhere is measured as a link and never entered.  Complete
checkpoints are cached (see inventory_cache) so a warm scan stats one inode per
directory instead of one per file; a cold dir's checkpoints are measured by
`find` (inventory_cold) where it can.  Anything unreadable is reported in
`problems` and measured as far as possible; nothing raises for bad data.
Standard library only.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import inventory_cold
from git_ckpt.disk_usage import DIR_FLAGS as _DIR_FLAGS
from git_ckpt.disk_usage import is_network_fs, measure_dir
from git_ckpt.inventory_cache import SizeCache
from git_ckpt.inventory_cold import Measured
from git_ckpt.inventory_names import child_path, parse_checkpoint_name, read_trainer_state  # noqa: F401
from git_ckpt.inventory_names import work_dir as _work_dir
from git_ckpt.records import Fields


class Checkpoint(Fields):
    _fields = ('path', 'name', 'step', 'size', 'mtime', 'complete', 'in_progress', 'kind', 'error',
               'state_error', 'best_recorded', 'inode')

    def __init__(self, path: Path, name: str, step: int | None, size: int, mtime: float, complete: bool,
                 in_progress: bool, kind: str, error: str | None = None, state_error: str | None = None,
                 best_recorded: str | None = None, inode: int = 0) -> None:
        self.path = path
        self.name = name
        self.step = step                    # None for tmp-checkpoint-*
        self.size = size                    # bytes allocated, hard links once within the checkpoint
        self.mtime = mtime                  # newest mtime of anything inside (or of the dir itself)
        self.complete = complete            # HF: has trainer_state.json; ART: not empty
        self.in_progress = in_progress      # tmp-checkpoint-*
        self.kind = kind                    # 'hf' | 'art'
        self.error = error                  # could not be read fully: size partial, never deleted
        self.state_error = state_error      # trainer_state.json present but unreadable/corrupt
        self.best_recorded = best_recorded  # best_model_checkpoint in its trainer_state.json
        self.inode = inode                  # of the checkpoint dir when scanned (prune re-checks it)


class Run(Fields):
    _fields = ('path', 'checkpoints', 'best', 'size', 'best_error')

    def __init__(self, path: Path, checkpoints: list[Checkpoint] | None = None, best: Checkpoint | None = None,
                 size: int = 0, best_error: str | None = None) -> None:
        self.path = path
        self.checkpoints = [] if checkpoints is None else checkpoints
        self.best = best
        self.size = size
        self.best_error = best_error  # why the best checkpoint could not be determined

    @property
    def latest(self) -> Checkpoint | None:
        steps = [c for c in self.checkpoints if c.step is not None]
        return steps[-1] if steps else None


class ScratchInventory(Fields):
    _fields = ('scratch_dir', 'runs', 'size', 'newest_mtime', 'problems', 'exists')

    def __init__(self, scratch_dir: Path, runs: list[Run] | None = None, size: int = 0,
                 newest_mtime: float | None = None, problems: list[str] | None = None,
                 exists: bool = True) -> None:
        self.scratch_dir = scratch_dir
        self.runs = [] if runs is None else runs
        self.size = size
        self.newest_mtime = newest_mtime
        self.problems = [] if problems is None else problems
        self.exists = exists

    @property
    def checkpoints(self) -> list[Checkpoint]:
        return [c for run in self.runs for c in run.checkpoints]

    @property
    def latest(self) -> Checkpoint | None:
        """The highest-step checkpoint of the most recently written run."""
        runs = [r for r in self.runs if r.latest is not None]
        if not runs:
            return None
        return max(runs, key=lambda r: r.latest.mtime).latest

    def in_progress(self, now: float | None = None, grace: float = C.PRUNE_GRACE_SECONDS) -> bool:
        """A save is under way: a tmp-checkpoint, or a write within the grace window."""
        now = time.time() if now is None else now
        if any(c.in_progress for c in self.checkpoints):
            return True
        return any(not c.complete and now - c.mtime < grace for c in self.checkpoints)


SCAN_THREADS = 4  # parallel walkers for uncached checkpoints, on network filesystems only


class _Scanner:
    def __init__(self, scratch_dir: Path, cache: SizeCache | None, measured: dict | None = None) -> None:
        self.scratch_dir = scratch_dir
        self.measured = measured  # inventory_cold's {path: Measured}: taken (popped) instead of walking
        self.prefix = f'{os.fspath(scratch_dir).rstrip("/")}/'
        self.cache = cache
        self.seen: set[tuple[int, int]] = set()
        self.problems: list[str] = []
        self.runs: list[Run] = []
        self.newest = 0.0
        self.threads = SCAN_THREADS if is_network_fs(scratch_dir) else 1
        self.pool = None
        self.hidden = 0   # > 0 inside git-ckpt's own work dirs: measured, never runs

    def _add_links(self, links: list[list[int]]) -> int:
        """Bytes of hard-linked files not counted yet anywhere in this scan."""
        added = 0
        for dev, ino, blocks in links:
            if (dev, ino) not in self.seen:
                self.seen.add((dev, ino))
                added += blocks
        return added

    def walk(self, dir_fd: int, path: Path, st_dir: os.stat_result) -> int:
        """Size of the tree at dir_fd (new bytes only); finds runs on the way."""
        self.newest = max(self.newest, st_dir.st_mtime)
        size = st_dir.st_blocks * 512
        try:
            with os.scandir(dir_fd) as it:
                entries = list(it)
        except OSError as exc:
            self.problems.append(f'cannot read {path}: {exc.strerror}')
            return size
        run = Run(path)
        judged: set[str] = set()
        size += self._hf_checkpoints(dir_fd, path, entries, run, judged)
        measured = {c.name for c in run.checkpoints}
        for entry in entries:
            if entry.name in judged:  # never walked as a plain dir
                if entry.name not in measured:  # a link or file posing as one, or gone
                    size += self._walk_entry(dir_fd, path, entry, descend=False)
            elif entry.name == C.ART_CHECKPOINTS_DIR and self._is_art_dir(dir_fd):
                size += self._walk_art_dir(dir_fd, path, run)
            else:
                size += self._walk_entry(dir_fd, path, entry)
        if run.checkpoints and not self.hidden:
            run.size = size
            run.checkpoints.sort(key=lambda c: (c.step is None, c.step or 0, c.name))
            self._pick_best(run)
            self.runs.append(run)
        return size

    def _walk_entry(self, dir_fd: int, path: Path, entry: os.DirEntry, descend: bool = True) -> int:
        """Size of one entry; a dir is walked for runs unless `descend` is False
        (a checkpoint name that is a dir by now was swapped in meanwhile: as a
        plain dir, a kept checkpoint's inner checkpoint-* would be a run)."""
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                self.problems.append(f'cannot stat {path / entry.name}: {exc.strerror}')
            return 0
        self.newest = max(self.newest, st.st_mtime)
        if not stat.S_ISDIR(st.st_mode):
            if st.st_nlink > 1:
                return self._add_links([[st.st_dev, st.st_ino, st.st_blocks * 512]])
            return st.st_blocks * 512
        if not descend:
            self.problems.append(f'{path / entry.name} changed while it was read; not measured')
            return 0
        try:
            fd = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            self.problems.append(f'cannot read {path / entry.name}: {exc.strerror}')
            return st.st_blocks * 512
        hidden = _work_dir(dir_fd, entry.name)
        self.hidden += hidden
        try:
            return self.walk(fd, child_path(path, entry.name), st)
        finally:
            self.hidden -= hidden
            os.close(fd)

    def _hf_checkpoints(self, dir_fd: int, path: Path, entries: list[os.DirEntry], run: Run,
                        judged: set[str]) -> int:
        """Measure the HF checkpoint dirs among `entries` into `run`; returns new
        bytes.  Adds every checkpoint name to `judged`: never walked as plain dirs."""
        size = 0
        specs = []
        for entry in entries:
            try:
                parsed = parse_checkpoint_name(entry.name)
            except ValueError:
                self.problems.append(f'{path / entry.name}: step is not a number; not treated as a checkpoint')
                continue
            if parsed is None:
                continue
            judged.add(entry.name)
            if entry.is_symlink():
                self.problems.append(f'{path / entry.name} is a symlink; not followed, not a checkpoint')
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            kind, step = parsed
            specs.append((entry.name, step, kind == 'tmp', 'hf'))
        for ckpt, new_bytes in self._checkpoints(dir_fd, path, specs):
            run.checkpoints.append(ckpt)
            size += new_bytes
        return size

    def _is_art_dir(self, dir_fd: int) -> bool:
        """Is <dir>/checkpoints an ART checkpoints dir (numeric subdirs)?"""
        try:
            fd = os.open(C.ART_CHECKPOINTS_DIR, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            return False
        try:
            with os.scandir(fd) as it:
                return any(e.name.isascii() and e.name.isdigit() and e.is_dir(follow_symlinks=False)
                           for e in it)
        except OSError:
            return False
        finally:
            os.close(fd)

    def _walk_art_dir(self, dir_fd: int, path: Path, run: Run) -> int:
        """Measure <run>/checkpoints/<step> dirs; other entries there are plain content."""
        cdir = path / C.ART_CHECKPOINTS_DIR
        try:
            fd = os.open(C.ART_CHECKPOINTS_DIR, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            self.problems.append(f'cannot read {cdir}: {exc.strerror}')
            return 0
        try:
            st = os.fstat(fd)
            size = st.st_blocks * 512
            with os.scandir(fd) as it:
                entries = list(it)
            specs = []
            for entry in entries:
                if entry.name.isascii() and entry.name.isdigit() and entry.is_dir(follow_symlinks=False):
                    specs.append((entry.name, int(entry.name), False, 'art'))
                    continue
                posing = entry.is_symlink() and entry.name.isdigit()
                if posing:
                    self.problems.append(f'{cdir / entry.name} is a symlink; not followed, not a checkpoint')
                size += self._walk_entry(fd, cdir, entry, descend=not posing)
            for ckpt, new_bytes in self._checkpoints(fd, cdir, specs):
                run.checkpoints.append(ckpt)
                size += new_bytes
            return size
        except OSError as exc:
            self.problems.append(f'cannot read {cdir}: {exc.strerror}')
            return 0
        finally:
            os.close(fd)

    def _checkpoints(self, parent_fd: int, parent: Path,
                     specs: list[tuple[str, int | None, bool, str]]) -> list[tuple[Checkpoint, int]]:
        """Measure checkpoints (name, step, in_progress, kind) of one parent dir;
        [(checkpoint, new bytes)].  Uncached trees are walked in parallel: on
        Lustre/GPFS each stat is a round trip, and stat releases the GIL."""
        parent_text = os.fspath(parent)  # once per parent: str(Path) is not cheap per checkpoint
        if len(specs) > 1 and self.threads > 1:
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor
                self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix='git-ckpt-scan')
            measured = list(self.pool.map(lambda spec: self._measure_one(parent_fd, parent, parent_text, *spec),
                                          specs))
        else:
            measured = [self._measure_one(parent_fd, parent, parent_text, *spec) for spec in specs]
        return [(ckpt, self._account(ckpt, links)) for ckpt, links in measured if ckpt is not None]

    def _account(self, ckpt: Checkpoint, links: list) -> int:
        """Bytes of `ckpt` not counted yet in this scan (main thread only)."""
        if ckpt.state_error:  # reported on every scan, cached or not
            self.problems.append(f'{ckpt.path}: {ckpt.state_error}')
        self.newest = max(self.newest, ckpt.mtime)
        linked = sum(b for _, _, b in links)
        return ckpt.size - linked + self._add_links(links)

    def _measure_one(self, parent_fd: int, parent: Path, parent_text: str, name: str, step: int | None,
                     in_progress: bool, kind: str) -> tuple[Checkpoint | None, list]:
        """One checkpoint, from the cache when its key holds, else from find's
        measurement of this very dir (inventory_cold), else walked; (ckpt, hard links)."""
        path = child_path(parent, name)
        text = f'{parent_text}/{name}'
        try:
            top = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                self.problems.append(f'cannot stat {path}: {exc.strerror}')
            return None, []
        measured = self.measured.pop(text, None) if self.measured else None
        if measured is not None and measured.tree.dirs[0][1:] != [top.st_ino, top.st_mtime_ns, top.st_ctime_ns]:
            measured = None  # replaced (an inode number may be reused) or changed since find looked: walk it
        rel = text[len(self.prefix):]  # path is under the scratch dir by construction
        cached = None
        if self.cache and not in_progress and measured is None:  # find measures cold dirs only
            cached = self.cache.lookup(rel, parent_fd, name, top)
        if cached is not None:
            ckpt = Checkpoint(path, name, step, cached['size'], cached['mtime'], bool(cached.get('complete')),
                              in_progress, kind, None, cached.get('state_error'), cached.get('best'),
                              top.st_ino)
            return ckpt, cached['links']
        ckpt, links, cacheable, dirs = self._measure_checkpoint(parent_fd, path, text, name, step,
                                                                in_progress, kind, top, measured)
        if cacheable and self.cache is not None:
            self.cache.store(rel, {'dirs': dirs, 'size': ckpt.size, 'mtime': ckpt.mtime,
                                   'links': links, 'complete': ckpt.complete,
                                   'state_error': ckpt.state_error, 'best': ckpt.best_recorded})
        return ckpt, links

    def _measure_checkpoint(self, parent_fd, path, text, name, step, in_progress, kind, top, measured):
        if measured is not None:
            tree = measured.tree  # find's (see inventory_cold)
            state = measured.state or read_trainer_state(parent_fd, name) if kind == 'hf' else (None, None)
            has_state = state != (None, None)  # (None, None): there is no trainer_state.json
        else:
            tree = measure_dir(parent_fd, name, text, top)
            has_state = C.TRAINER_STATE_NAME in tree.top_names
            state = read_trainer_state(parent_fd, name) if kind == 'hf' and has_state else (None, None)
        best = state[0].get('best_model_checkpoint') if state[0] is not None else None
        best = best if isinstance(best, str) else None
        state_error = state[1]
        complete = has_state if kind == 'hf' else tree.has_entries
        error = '; '.join(tree.errors) or None
        self.problems.extend(tree.errors)
        ckpt = Checkpoint(path, name, step, tree.size, tree.mtime, complete, in_progress, kind,
                          error, state_error, best, top.st_ino)
        # A trainer_state.json that does not parse may be one being written
        # (HF opens it, then writes): filling it in changes no directory's
        # mtime, so a cached verdict would stick.  Re-read it on every scan.
        cacheable = complete and not in_progress and error is None and state_error is None
        return ckpt, tree.links, cacheable, tree.dirs

    def _pick_best(self, run: Run) -> None:
        """best_model_checkpoint of the most recently written complete checkpoint,
        matched by basename (the recorded path may be under another prefix)."""
        complete = [c for c in run.checkpoints if c.kind == 'hf' and c.complete]
        if not complete:
            return
        newest = max(complete, key=lambda c: (c.mtime, c.step or 0))
        if newest.state_error:
            run.best_error = f'{newest.name}: {newest.state_error}'
            return
        if newest.best_recorded is None:
            return
        base = os.path.basename(newest.best_recorded.rstrip('/'))
        run.best = next((c for c in run.checkpoints if c.name == base), None)
        if run.best is None:
            self.problems.append(f'{run.path}: best checkpoint {base} (from {newest.name}/'
                                 f'{C.TRAINER_STATE_NAME}) is not there any more')


def scan(scratch_dir: Path, cache: SizeCache | bool | None = None,
         measured: dict[str, Measured] | None = None) -> ScratchInventory:
    """Inventory of one scratch dir.  `cache`: None for the scratch root's size
    cache, False for none, or a SizeCache.  `measured`: inventory_cold.measure's
    answer covering this dir; None: measured here if the dir is cold.  Never
    raises for what it finds."""
    scratch_dir = Path(os.path.abspath(scratch_dir))
    inv = ScratchInventory(scratch_dir)
    try:
        fd = os.open(scratch_dir, _DIR_FLAGS)
    except FileNotFoundError:
        inv.exists = False
        inv.problems.append(f'{scratch_dir} does not exist')
        return inv
    except OSError as exc:
        inv.exists = os.path.lexists(scratch_dir)
        why = 'is a symlink or not a directory' if exc.errno in (errno.ENOTDIR, errno.ELOOP) else exc.strerror
        inv.problems.append(f'cannot read {scratch_dir}: {why}')
        return inv
    if cache is None:
        cache = SizeCache.for_scratch_dir(scratch_dir)
    if cache:
        cache.load()  # before any worker thread looks things up, and to know whether the dir is cold
    if measured is None:
        measured = inventory_cold.measure([(scratch_dir, cache or None)])
    scanner = _Scanner(scratch_dir, cache or None, measured)
    try:
        inv.size = scanner.walk(fd, scratch_dir, os.fstat(fd))
    finally:
        os.close(fd)
        if scanner.pool is not None:
            scanner.pool.shutdown()
    if scanner.cache is not None:
        scanner.cache.save()
    inv.runs = sorted(scanner.runs, key=lambda r: os.fspath(r.path))
    inv.problems.extend(scanner.problems)
    inv.newest_mtime = scanner.newest or None
    return inv
