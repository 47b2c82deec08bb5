"""git_index.py: the commit guard's view of the index, and the stream the
native shim pipes to it."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from conftest import git
from git_ckpt import git as G
from git_ckpt import git_index as GI

HOOK = Path(__file__).resolve().parents[1] / 'hooks' / 'pre-commit'


def shim_block() -> str:
    """The shell lines of hooks/pre-commit whose output is piped to the guard."""
    return re.search(r'\{\n(.*?)\n\s*\} \|', HOOK.read_text(), re.S).group(1)


def test_shim_runs_exactly_the_git_calls_the_guard_would():
    lines = [line.strip() for line in shim_block().replace('\\\n', ' ').strip().split('\n')]
    assert len(lines) == 4
    config, config_trailer, diff, diff_trailer = lines
    assert shlex.split(config.replace('2>/dev/null', '')) == ['git', *G.CONFIG_ARGS]
    assert shlex.split(diff.replace('2>/dev/null', '')) == ['git', *GI.STAGED_ARGS]
    assert shlex.split(config_trailer) == ['printf', GI.CONFIG_TRAILER + '%d\\0', '$?']
    assert shlex.split(diff_trailer) == ['printf', GI.STAGED_TRAILER + '%d\\0', '$?']


def shim_stream(repo: Path) -> bytes:
    """What the installed shim pipes to the guard, made by the shim's own lines."""
    return subprocess.run(['sh', '-c', shim_block()], cwd=repo, capture_output=True, check=True).stdout


def test_stream_parses_like_the_direct_git_calls(repo):
    for name in ('a b.txt', 'new\nline.bin', 'ünï.txt'):
        (repo / name).write_text(name)
    (repo / 'link').symlink_to('a b.txt')
    git('add', '.', cwd=repo)
    git('config', 'ckpt.allow', 'x\ny', cwd=repo)  # a value with a newline
    git('config', '--add', 'ckpt.allow', 'git-ckpt-config-exit 0', cwd=repo)
    config, staged = GI.parse_shim_stream(shim_stream(repo))
    assert staged == GI.staged_changes(repo)
    assert sorted(staged.paths) == ['a b.txt', 'link', 'new\nline.bin', 'ünï.txt']
    assert config == G.config_get_all(repo)
    assert [value for _, key, value in config if key == 'ckpt.allow'] == ['x\ny', 'git-ckpt-config-exit 0']


def test_stream_with_nothing_staged_and_no_config(repo):
    assert GI.parse_shim_stream(shim_stream(repo)) == ([], GI.Staged([], [], []))


def test_failed_cut_or_malformed_streams_are_refused(repo):
    (repo / 'x').write_text('x')
    git('add', 'x', cwd=repo)
    git('config', 'ckpt.maxFileSize', '1M', cwd=repo)
    good = shim_stream(repo)
    config, staged = GI.parse_shim_stream(good)
    assert config == [('local', 'ckpt.maxfilesize', '1M')] and staged.paths == ['x']
    config_failed = good.replace(b'config-exit 0', b'config-exit 3')
    assert GI.parse_shim_stream(config_failed) == (None, staged)
    diff_failed = good.replace(b'diff-exit 0', b'diff-exit 128')
    assert GI.parse_shim_stream(diff_failed) == (config, None)
    after_config = good.index(b'config-exit 0\0') + len(b'config-exit 0\0')
    for cut in (good[:-1], good[:after_config + 10], good[:after_config],
                good[:after_config] + good[good.index(b'\0', after_config) + 1:]):  # a field missing
        assert GI.parse_shim_stream(cut) == (config, None)
    for broken in (b'', b'\0', good[:after_config - 3], b'local\0ckpt.a\nb\0'):
        assert GI.parse_shim_stream(broken) == (None, None)


def test_entries_in_index_by_pathspec_and_from_the_whole_index_agree(repo, monkeypatch):
    """(pre-commit framework) Few files go to ls-files as literal pathspecs,
    many list the whole index: the same answer either way, for odd names
    (git's pathspec magic and globs taken literally), symlinks, files not in
    the index and names given twice."""
    from git_ckpt import constants as C
    names = ['a b.txt', 'new\nline.bin', 'ünï.txt', '-dash', ':(exclude)magic', ':!x', 'star*', 'stars',
             '[ab].txt', 'a.txt', 'sub/deep file.py']
    for name in names:
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_text(name)
    (repo / 'link').symlink_to('a b.txt')
    git('--literal-pathspecs', 'add', '--', *names, 'link', cwd=repo)
    asked = ['star*', 'link', 'not staged.txt', ':(exclude)magic', 'a b.txt', 'star*', 'new\nline.bin',
             '-dash', ':!x', '[ab].txt', 'ünï.txt', 'sub/deep file.py']
    by_pathspec = GI.entries_in_index(asked, cwd=repo)
    monkeypatch.setattr(C, 'GUARD_INDEX_PATHSPECS_MAX', 0)
    assert GI.index_args(asked)[-1] == ':/'
    assert GI.entries_in_index(asked, cwd=repo) == by_pathspec
    unique = list(dict.fromkeys(asked))
    assert by_pathspec.paths == unique
    staged = GI.staged_changes(repo)
    expected = dict(zip(staged.paths, zip(staged.modes, staged.oids)))
    for path, mode, oid in zip(*by_pathspec):
        assert (mode, oid) == expected.get(path, ('100644', '')), path
    assert by_pathspec.modes[unique.index('link')] == '120000'
    monkeypatch.setattr(C, 'GUARD_INDEX_PATHSPECS_MAX', 64)
    # Alone, a name that reads as pathspec magic would list nothing at all.
    assert GI.entries_in_index([':(exclude)magic'], cwd=repo).oids[0] == expected[':(exclude)magic'][1]


def test_entries_in_index_of_an_empty_index(repo):
    assert GI.entries_in_index(['x', 'y'], cwd=repo) == GI.Staged(['x', 'y'], ['100644'] * 2, ['', ''])
