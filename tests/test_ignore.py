"""The marked .gitignore block (git_ckpt/ignore.py) and output helpers."""
from __future__ import annotations

import pytest

from git_ckpt import constants as C
from git_ckpt.ignore import has_block, render_block, update_gitignore
from git_ckpt.output import human_size


def test_block_with_extra_patterns_has_no_duplicates(tmp_path):
    assert render_block(['wt-links/', 'checkpoint-*/']) == [
        C.IGNORE_BEGIN, *C.IGNORE_PATTERNS, 'wt-links/', C.IGNORE_END]
    assert update_gitignore(tmp_path, ['wt-links/']) is True
    assert has_block(tmp_path)
    assert update_gitignore(tmp_path, ['wt-links/']) is False
    # Dropping an extra pattern rewrites the block in place.
    (tmp_path / '.gitignore').write_text('a\n' + (tmp_path / '.gitignore').read_text() + 'z\n')
    assert update_gitignore(tmp_path) is True
    assert (tmp_path / '.gitignore').read_text().splitlines() == [
        'a', C.IGNORE_BEGIN, *C.IGNORE_PATTERNS, C.IGNORE_END, 'z']


def test_no_gitignore_means_no_block(tmp_path):
    assert not has_block(tmp_path)


def test_unterminated_block_is_not_eaten(tmp_path):
    # A begin marker without its end: append a fresh block, keep the user's lines.
    (tmp_path / '.gitignore').write_text(f'{C.IGNORE_BEGIN}\nmine/\n')
    update_gitignore(tmp_path)
    lines = (tmp_path / '.gitignore').read_text().splitlines()
    assert 'mine/' in lines and lines[-1] == C.IGNORE_END
    assert update_gitignore(tmp_path) is False  # and a re-run keeps them too
    assert (tmp_path / '.gitignore').read_text().splitlines() == lines


@pytest.mark.parametrize('n,text', [(0, '0B'), (1023, '1023B'), (1536, '1.5K'),
                                    (5 * 1024 ** 3, '5.0G'), (3 * 1024 ** 6, '3072.0P')])
def test_human_size(n, text):
    assert human_size(n) == text
