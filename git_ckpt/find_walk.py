"""Measuring many checkpoint dirs with GNU find: the per-file walk in C.

A cold inventory lstat's every file.  The system call costs the same from C
or Python, but in `find` processes the walk runs beside the Python process
(on N free cores, N finds walk a share each while Python reads the
trainer_state.json files), and nothing has to be pickled back, as it had to
be from forked Python workers.

find prints, per checkpoint (a start point), one record per directory (inode,
mtime, ctime: the cache key, taken by find's lstat of the directory *before*
it reads it, so an entry added during the walk changes a key recorded
earlier), one per file with several links (device, inode, blocks: counted
once per checkpoint and listed for the scan-wide count, as disk_usage.measure
does), and `blocks mtime` for every other entry,
which Python sums with C-level string operations.  -P (the default): no
symlink is followed, a start point included; allocated blocks, like `du`.

Whatever find did not measure cleanly is left out of the result, and the
caller walks it in Python, so the messages about unreadable parts stay
git-ckpt's own: find missing or not GNU (BusyBox and BSD find have no
-printf), an error naming a path (unreadable, vanished), a start point that
is no longer a directory, a timestamp in a format not expected.
Standard library only.
"""
from __future__ import annotations

import os

from git_ckpt import spawn
from git_ckpt.disk_usage import Tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# One record per entry, each ending in NUL (names may hold newlines).
EXPRESSION = [
    '(', '-type', 'd', '-printf', r'D %d %i %T@ %C@ %b %p\0', ')', '-o',
    '(', '-links', '+1', '-printf', r'L %D %i %b %T@\0', ')', '-o',
    '-printf', r'%b %T@\0',
]
PIPE_SIZE = 1 << 20         # find keeps walking while Python reads trainer states
_START = b'\0D 0 '          # begins a start point's records: nothing else can


def argv_budget() -> int:
    """Bytes of start points one find may get: half of ARG_MAX (which holds
    the environment too), at most 1 MiB.  Start points beyond it wait for a
    second round of finds, so it must not be small: 128 KiB split the 1,800
    checkpoints of a worker's share in the benchmark into two finds in a row."""
    try:
        arg_max = os.sysconf('SC_ARG_MAX')
    except (ValueError, OSError):
        arg_max = 256 * 1024
    env_bytes = sum(len(k) + len(v) + 2 for k, v in os.environ.items())
    return max(32 * 1024, min(1 << 20, arg_max // 2 - env_bytes))


def start(paths: list[str], processes: int) -> Callable[[], dict[str, Tree]]:
    """Start find over the checkpoint dirs `paths` (absolute, directories) in
    up to `processes` processes; returns the function that waits and returns
    {path: Tree} of the ones measured cleanly (empty when find cannot run)."""
    batches = _batches(paths, max(1, processes))
    env = dict(os.environ, LC_ALL='C')
    try:
        collect = spawn.start_all([['find', *batch, *EXPRESSION] for batch in batches[:processes]], env,
                                  pipe_size=PIPE_SIZE)
    except OSError:  # no find on PATH, or no pipes
        return dict

    def finish() -> dict[str, Tree]:
        trees: dict[str, Tree] = {}
        done = collect()
        for i in range(processes, len(batches), processes):  # more than the argvs held: the rest now
            try:
                done.extend(spawn.start_all([['find', *batch, *EXPRESSION] for batch in batches[i:i + processes]],
                                            env, pipe_size=PIPE_SIZE)())
            except OSError:
                break
        for batch, (code, out, err) in zip(batches, done):
            measured = parse(out, batch)
            for path in _failed(code, err, batch):
                measured.pop(path, None)
            trees.update(measured)
        return trees
    return finish


def _batches(paths: list[str], processes: int) -> list[list[str]]:
    """`paths` in `processes` even shares, each split further to fit an argv."""
    per = -(-len(paths) // processes) if paths else 0
    budget = argv_budget()
    batches = []
    for i in range(0, len(paths), per or 1):
        batch, size = [], 0
        for path in paths[i:i + per]:
            if batch and size + len(path) + 1 > budget:
                batches.append(batch)
                batch, size = [], 0
            batch.append(path)
            size += len(path) + 1
        batches.append(batch)
    return [b for b in batches if b]


def _failed(code: int, err: bytes, batch: list[str]) -> list[str]:
    """The start points an unsuccessful find may have measured wrongly: the
    ones its messages name (`find: '<path>': <why>`), else all of them."""
    if code == 0:
        return []
    tops = set(batch)
    failed = []
    for line in err.splitlines():
        head, sep, _ = line.rpartition(b"': ")
        if not (sep and head.startswith(b"find: '")):
            return batch
        path = os.fsdecode(head[len(b"find: '"):])
        while path not in tops and '/' in path.strip('/'):
            path = path.rsplit('/', 1)[0]
        if path not in tops:
            return batch
        failed.append(path)
    return failed or batch


def parse(out: bytes, batch: list[str]) -> dict[str, Tree]:
    """{start point: Tree} from find's records for `batch` (in order).  A start
    point without its own `D 0` record (it vanished, or is not a directory
    any more) may have had its records appended to the one before: both are
    left out."""
    trees: dict[str, Tree] = {}
    data = b'\0' + out
    chunks = data.split(_START)[1:]
    # Subdirs or hard links anywhere?  If not, no chunk needs looking for them.
    special = data.count(b'\0D ') != len(chunks) or b'\0L ' in data
    expected = iter(batch)
    previous = None
    for chunk in chunks:
        body_at = chunk.find(b'\0') + 1
        head = chunk[:body_at - 1 if body_at else len(chunk)].split(b' ', 4)
        if len(head) != 5:
            return trees
        path = head[4].decode('utf-8', 'surrogateescape')  # os.fsdecode, without its Python frames
        for want in expected:
            if want == path:
                break
            trees.pop(previous, None)  # `want` printed no D 0: its records went to `previous`
            previous = None
        else:
            return trees  # find printed a start point it was not given
        tree = _tree(head, chunk, body_at or len(chunk), len(head[4]), special)
        if tree is not None:
            trees[path] = tree
        previous = path
    if next(expected, None) is not None:
        trees.pop(previous, None)
    return trees


def _tree(head: list[bytes], chunk: bytes, body_at: int, top_len: int, special: bool) -> Tree | None:
    """One checkpoint's Tree from its D 0 fields and the rest of its records
    (`special`: there may be D and L records among them)."""
    tree = Tree()
    try:
        mtime = head[1]
        tree.dirs.append(['.', int(head[0]), _ns(mtime), _ns(head[2])])
        blocks = int(head[3])
        if special and (b'\0D ' in chunk or b'\0L ' in chunk):  # subdirs or hard links: record by record
            blocks, stamps, fields = _special(tree, chunk[body_at:].split(b'\0'), top_len, blocks)
            stamps.append(mtime)
        else:  # the common case: plain files only, summed without a Python loop
            fields = chunk[body_at:].replace(b'\0', b' ').split()
            stamps = fields[1::2]
            stamps.append(mtime)
        blocks += sum(map(int, fields[0::2]))
        newest = _newest(stamps)
    except ValueError:  # a record not in the expected format: walk it in Python
        return None
    tree.size = blocks * 512
    tree.mtime = newest
    tree.has_entries = len(stamps) > 1
    return tree


def _special(tree: Tree, records: list[bytes], top_len: int, blocks: int) -> tuple[int, list, list]:
    """Subdir (D) and hard-link (L) records into `tree`; (blocks, their
    mtimes and the plain files' ones, the plain files' fields)."""
    stamps = []
    plain = []
    seen = set()
    for record in records:
        kind = record[:1]
        if kind == b'D':
            _, _, ino, mtime, ctime, size, path = record.split(b' ', 6)
            tree.dirs.append([os.fsdecode(path[top_len + 1:]), int(ino), _ns(mtime), _ns(ctime)])
            blocks += int(size)
            stamps.append(mtime)
        elif kind == b'L':
            _, dev, ino, size, mtime = record.split(b' ')
            stamps.append(mtime)
            if (dev, ino) not in seen:
                seen.add((dev, ino))
                tree.links.append([int(dev), int(ino), int(size) * 512])
                blocks += int(size)
        elif record:
            plain.append(record)
    fields = b' '.join(plain).split()
    stamps += fields[1::2]
    return blocks, stamps, fields


def _ns(stamp: bytes) -> int:
    """Nanoseconds of find's `%T@`: seconds, '.', 10 digits (the ns and a 0).
    Anything else (an older find's format, a time before 1970) raises
    ValueError, and the checkpoint is walked in Python."""
    if stamp[-11:-10] != b'.' or not stamp[:1].isdigit():
        raise ValueError(stamp)
    return int(stamp[:-11] + stamp[-10:-1])


def _newest(stamps: list[bytes]) -> float:
    """The newest of `%T@` stamps, as the float os.stat's st_mtime would give
    (seconds + ns * 1e-9).  Stamps of the same length compare as text."""
    if len(set(map(len, stamps))) == 1:
        newest = max(stamps)
    else:
        newest = max(stamps, key=lambda s: (s[:1] != b'-', len(s), s))
    ns = _ns(newest)
    return ns // 1_000_000_000 + (ns % 1_000_000_000) * 1e-9
