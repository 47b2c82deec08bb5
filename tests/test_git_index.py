"""git_index.py: the commit guard's view of the index, and the stream the
native shim pipes to it."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from conftest import git
from git_ckpt import git_index as GI

HOOK = Path(__file__).resolve().parents[1] / 'hooks' / 'pre-commit'


def shim_diff_command() -> tuple[list[str], bytes]:
    """The `git diff` argv and the printf trailer format in hooks/pre-commit."""
    text = HOOK.read_text()
    block = re.search(r'\{\n(.*?)\n\s*\} \|', text, re.S).group(1)
    diff_line, printf_line = block.replace('\\\n', ' ').strip().split('\n')
    argv = shlex.split(diff_line.replace('2>/dev/null', ''))
    fmt = shlex.split(printf_line)[1]
    return argv, fmt.encode()


def test_shim_runs_exactly_the_diff_the_guard_would():
    argv, fmt = shim_diff_command()
    assert argv == ['git', *GI.STAGED_ARGS]
    assert fmt == GI.STAGED_TRAILER + b'%d\\0'


def shim_stream(repo) -> bytes:
    argv, _ = shim_diff_command()
    script = f'{shlex.join(argv)} 2>/dev/null; printf \'{GI.STAGED_TRAILER.decode()}%d\\0\' "$?"'
    return subprocess.run(['sh', '-c', script], cwd=repo, capture_output=True, check=True).stdout


def test_stream_parses_like_the_direct_diff(repo):
    for name in ('a b.txt', 'new\nline.bin', 'ünï.txt'):
        (repo / name).write_text(name)
    (repo / 'link').symlink_to('a b.txt')
    git('add', '.', cwd=repo)
    staged = GI.staged_from_stream(shim_stream(repo))
    assert staged == GI.staged_changes(repo)
    assert sorted(staged.paths) == ['a b.txt', 'link', 'new\nline.bin', 'ünï.txt']


def test_stream_with_nothing_staged(repo):
    assert GI.staged_from_stream(shim_stream(repo)) == GI.Staged([], [], [])


def test_failed_cut_or_malformed_streams_are_refused(repo):
    (repo / 'x').write_text('x')
    git('add', 'x', cwd=repo)
    good = shim_stream(repo)
    assert GI.staged_from_stream(good) is not None
    bad = [
        good.replace(GI.STAGED_TRAILER + b'0', GI.STAGED_TRAILER + b'128'),  # git failed
        good[:-1],                                                          # no final NUL
        good[:len(good) // 2],                                              # cut short
        good[good.index(b'\0') + 1:],                                       # a field missing
        b'', b'\0', GI.STAGED_TRAILER + b'0',
    ]
    assert [GI.staged_from_stream(data) for data in bad] == [None] * len(bad)
    # A failed shim diff with nothing on stdout.
    assert GI.staged_from_stream(GI.STAGED_TRAILER + b'129\0') is None
