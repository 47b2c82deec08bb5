"""Hostile trees for the containment properties (scenario 4 of issue 8).

An `Outside` dir of checksummed sentinels (files, dirs, symlinks, a name with
a newline and non-UTF-8 bytes, files that the trees hard-link to) sits next
to the managed scratch root.  Hypothesis draws trees (`TREE`) whose entries
point out of the root in every way a filesystem allows: symlinks to outside
files and dirs (absolute, and relative through `..`), hard links to outside
files, symlinks named like checkpoints, nested checkpoint dirs, names that are
bytes and not text.  `snapshot` records everything about the outside dir
(content, mode, mtime, link target, inode and link count) so a test can count
what a command touched there.  Paths are handled as bytes throughout, so a
name that is not valid UTF-8 is compared as it is on disk.
"""
from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

OLD = time.time() - 7200      # outside sentinels: older than anything in the trees
TREE_AGE = 3600               # checkpoints: well past prune's grace window

# Names a cluster actually produces, and bytes no decoder likes.
ODD_NAMES = [b'caf\xc3\xa9', b'\xff\xfe', b'new\nline', b'..x', b'x..', b' sp ', b'-rf', b'\xe2\x80\x8b',
             b'checkpoint-x', b'.hidden', b'a b', b'\\', b'*', b'\xed\xa0\x80']
RESERVED = (b'.git-ckpt', b'checkpoint-', b'tmp-checkpoint-', b'checkpoints')


def _plain(name: bytes) -> bool:
    return (b'/' not in name and b'\0' not in name and name not in (b'.', b'..')
            and not name.startswith(RESERVED))


NAME = st.one_of(st.sampled_from(ODD_NAMES), st.binary(min_size=1, max_size=8)).filter(_plain)


# --- the outside world ----------------------------------------------------------

@dataclass
class Outside:
    """Sentinels outside the managed root; `files` are hard-link candidates."""
    base: Path
    files: list[Path] = field(default_factory=list)
    dirs: list[Path] = field(default_factory=list)

    @classmethod
    def build(cls, base: Path) -> 'Outside':
        out = cls(base)
        base.mkdir()
        for rel, data, mode in [('secret.txt', b'do not touch\n', 0o640), ('hard.bin', os.urandom(3000), 0o600),
                                ('dir/inner.txt', b'inner\n', 0o644), ('dir/sub/deep.bin', os.urandom(500), 0o400),
                                ('ro.txt', b'read only\n', 0o444)]:
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode)
            if rel != 'ro.txt':
                out.files.append(path)
        odd = os.fsdecode(os.path.join(os.fsencode(base), b'caf\xe9\nodd'))
        Path(odd).write_bytes(b'latin-1 name with a newline\n')
        out.files.append(Path(odd))
        out.dirs = [base / 'dir', base / 'dir' / 'sub']
        os.symlink('dir', base / 'link-to-dir')
        os.symlink('/etc/hostname', base / 'abs-link')
        out.age(base)
        return out

    def age(self, top: Path) -> None:
        for dirpath, dirnames, filenames in os.walk(os.fsencode(top), topdown=False):
            for name in dirnames + filenames:
                os.utime(os.path.join(dirpath, name), (OLD, OLD), follow_symlinks=False)
        os.utime(top, (OLD, OLD))

    def targets(self) -> list[str]:
        """Where symlinks in a tree may point: files, dirs, the outside dir itself, `/`."""
        return [os.fspath(p) for p in self.files + self.dirs] + [os.fspath(self.base), '/', '/etc']

    def inodes(self) -> set[int]:
        return {os.lstat(p).st_ino for p in self.files}

    def mirror(self, rel: str) -> Path:
        """A fresh dir outside the root that a swapped-in symlink points to."""
        path = self.base / 'victims' / rel
        path.mkdir(parents=True)
        return path


def _digest(path: bytes) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def snapshot(top: Path) -> dict[bytes, tuple]:
    """rel path -> everything about it (never following a symlink), `top` included as b''."""
    out: dict[bytes, tuple] = {}
    root = os.fsencode(top)

    def record(path: bytes, rel: bytes) -> None:
        st_ = os.lstat(path)
        common = (stat.S_IMODE(st_.st_mode), st_.st_mtime_ns, st_.st_ino, st_.st_nlink)
        if stat.S_ISLNK(st_.st_mode):
            out[rel] = ('link', os.readlink(path), st_.st_ino)
        elif stat.S_ISDIR(st_.st_mode):
            out[rel] = ('dir', *common)
            for entry in sorted(os.listdir(path)):
                record(os.path.join(path, entry), os.path.join(rel, entry) if rel else entry)
        else:
            out[rel] = ('file', *common, st_.st_size, _digest(path))

    if os.path.lexists(root):
        record(root, b'')
    return out


def changed(before: dict, after: dict, nlink_delta: dict[int, int] | None = None) -> list[bytes]:
    """Paths added, removed or changed in any recorded way.  `nlink_delta`:
    inode -> how many hard links to it inside the root the command was meant
    to remove (negative) or add; every other link count must be as before."""
    delta = nlink_delta or {}
    expect = {k: (v[:4] + (v[4] + delta.get(v[3], 0),) + v[5:] if v[0] == 'file' else v)
              for k, v in before.items()}
    return sorted(k for k in expect.keys() | after.keys() if expect.get(k) != after.get(k))


def tree_state(top: Path, outside_inodes: set[int] = frozenset()) -> dict[bytes, tuple]:
    """Inside the root: what a command is allowed to change is compared by
    content and kind (not mtimes, which deleting neighbours changes); a file
    that is a hard link to an outside sentinel says so."""
    out = {}
    for rel, rec in snapshot(top).items():
        if rec[0] == 'link':
            out[rel] = ('link', rec[1])
        elif rec[0] == 'dir':
            out[rel] = ('dir',)
        else:
            out[rel] = ('file', rec[1], rec[5], rec[6], rec[3] if rec[3] in outside_inodes else None)
    return out


def without_inodes(state: dict) -> dict:
    """A copy on another filesystem has new inodes: compare the rest."""
    return {k: (v[:4] + (None,) if v[0] == 'file' else v) for k, v in state.items()}


def outside_inode_counts(state: dict) -> dict[int, int]:
    counts: dict[int, int] = {}
    for v in state.values():
        if v[0] == 'file' and v[4] is not None:
            counts[v[4]] = counts.get(v[4], 0) + 1
    return counts


# --- the trees ------------------------------------------------------------------

def _link_target(outside_targets: list[str]):
    """A symlink target that leaves the tree: absolute, or relative through `..`."""
    absolute = st.sampled_from(outside_targets)
    dotted = st.builds(lambda n, t: '../' * n + t.lstrip('/'), st.integers(1, 14), absolute)
    odd = st.sampled_from(['..', '../..', '.', '/', 'nowhere', '../' * 40, 'a/../../..'])
    return st.one_of(absolute, dotted, odd)


def content(outside: Outside, depth: int = 2):
    """A list of entries: ('file', name, bytes) | ('dir', name, entries) |
    ('symlink', name, target) | ('hardlink', name, outside file index) |
    ('ckpt', 'checkpoint-N', entries): a checkpoint nested in the content."""
    leaf = st.one_of(
        st.tuples(st.just('file'), NAME, st.binary(max_size=300)),
        st.tuples(st.just('symlink'), NAME, _link_target(outside.targets())),
        st.tuples(st.just('hardlink'), NAME, st.integers(0, len(outside.files) - 1)),
    )
    if depth == 0:
        entry = leaf
    else:
        sub = content(outside, depth - 1)
        entry = st.one_of(leaf, st.tuples(st.just('dir'), NAME, sub),
                          st.tuples(st.just('ckpt'), st.integers(0, 99).map(lambda n: f'checkpoint-{n}'.encode()),
                                    sub))
    return st.lists(entry, max_size=4, unique_by=lambda e: e[1])


@dataclass
class Spec:
    """A scratch dir's worth of runs: {run name: {step: content}}, plus extras
    at the top (files, symlinks named like runs) and decoys in each run
    (symlinks named checkpoint-N, pointing out of the root)."""
    runs: dict[bytes, dict[int, list]]
    top: list
    decoys: dict[bytes, list[tuple[int, str]]]


def specs(outside: Outside, max_runs: int = 3):
    steps = st.dictionaries(st.integers(1, 500), content(outside), min_size=1, max_size=4)
    decoy = st.lists(st.tuples(st.integers(501, 600), st.sampled_from(outside.targets())), max_size=2,
                     unique_by=lambda d: d[0])
    runs = st.dictionaries(NAME, st.tuples(steps, decoy), min_size=1, max_size=max_runs)
    # Top-level extras are leaves: a checkpoint there would make the scratch dir a run.
    return st.builds(lambda r, top: Spec({k: v[0] for k, v in r.items()}, [e for e in top if e[1] not in r],
                                         {k: v[1] for k, v in r.items()}),
                     runs, content(outside, depth=0))


def materialize(directory: Path, entries: list, outside: Outside) -> None:
    base = os.fsencode(directory)
    for kind, name, arg in entries:
        path = os.path.join(base, name)
        if kind == 'file':
            with open(path, 'xb') as f:
                f.write(arg)
        elif kind == 'symlink':
            os.symlink(arg, path)
        elif kind == 'hardlink':
            os.link(outside.files[arg], path)
        else:
            os.mkdir(path)
            materialize(Path(os.fsdecode(path)), arg, outside)
            if kind == 'ckpt':
                with open(os.path.join(path, b'trainer_state.json'), 'xb') as f:
                    f.write(b'{"global_step": 1}')


def build(scratch: Path, spec: Spec, outside: Outside) -> None:
    """Write `spec` into the scratch dir; checkpoint mtimes rise with the step,
    all older than prune's grace window (hard links keep the outside mtime)."""
    base = time.time() - TREE_AGE
    materialize(scratch, spec.top, outside)
    for run, steps in spec.runs.items():
        run_dir = Path(os.fsdecode(os.path.join(os.fsencode(scratch), run)))
        run_dir.mkdir()
        for step, entries in steps.items():
            ckpt = run_dir / f'checkpoint-{step}'
            ckpt.mkdir()
            materialize(ckpt, entries, outside)
            (ckpt / 'trainer_state.json').write_text(f'{{"global_step": {step}, "best_model_checkpoint": null}}')
            _set_mtime(ckpt, base + step)
        for step, target in spec.decoys[run]:
            os.symlink(target, run_dir / f'checkpoint-{step}')
            os.utime(run_dir / f'checkpoint-{step}', (base, base), follow_symlinks=False)


def _set_mtime(top: Path, when: float) -> None:
    """mtime of everything under top, except hard links (their inode is a sentinel's)."""
    for dirpath, dirnames, filenames in os.walk(os.fsencode(top), topdown=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st_ = os.lstat(path)
            if stat.S_ISREG(st_.st_mode) and st_.st_nlink > 1:
                continue
            os.utime(path, (when, when), follow_symlinks=False)
    os.utime(top, (when, when))


def expected_prune(spec: Spec, keep: int) -> list[bytes]:
    """Checkpoints `prune --keep keep` must delete (run/checkpoint-N, bytes)."""
    gone = []
    for run, steps in spec.runs.items():
        for step in sorted(steps)[:-keep]:
            gone.append(os.path.join(run, f'checkpoint-{step}'.encode()))
    return gone


def minus(state: dict, gone: list[bytes]) -> dict:
    """`state` without the subtrees `gone`."""
    return {k: v for k, v in state.items()
            if not any(k == g or k.startswith(g + b'/') for g in gone)}


def subtree(state: dict, rel: bytes) -> dict:
    """The entries of `state` under `rel` (rel itself as b'')."""
    out = {k[len(rel) + 1:]: v for k, v in state.items() if k.startswith(rel + b'/')}
    if rel in state:
        out[b''] = state[rel]
    return out


def clear(directory: Path, keep: tuple[bytes, ...] = ()) -> None:
    """Empty a scratch dir between examples (never following links)."""
    import shutil
    base = os.fsencode(directory)
    for name in os.listdir(base):
        if name in keep:
            continue
        path = os.path.join(base, name)
        if os.path.isdir(path) and not os.path.islink(path):
            for dirpath, dirnames, _ in os.walk(path):
                for d in dirnames:
                    full = os.path.join(dirpath, d)
                    if not os.path.islink(full):
                        os.chmod(full, 0o700)
            shutil.rmtree(path)
        else:
            os.unlink(path)
