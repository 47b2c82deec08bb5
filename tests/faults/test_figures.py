"""The figures table the fault suite writes into the README."""
from __future__ import annotations

import json

from faults import figures


def test_trials_are_summed_across_processes(tmp_path, monkeypatch):
    monkeypatch.setenv(figures.DIR_ENV, str(tmp_path))
    figures.record_trial('1. kill -9: prune', failed=False)
    figures.record_trial('1. kill -9: prune', failed=True, bytes_lost=10)
    (tmp_path / 'other-worker.jsonl').write_text(json.dumps(
        {'scenario': '4. containment', 'failed': False, 'bytes_lost': 0, 'outside_touched': 2}) + '\n')
    assert figures.collect(str(tmp_path)) == {
        '1. kill -9: prune': {'trials': 2, 'failures': 1, 'bytes_lost': 10, 'outside_touched': 0},
        '4. containment': {'trials': 1, 'failures': 0, 'bytes_lost': 0, 'outside_touched': 2},
    }


def test_readme_rows_of_scenarios_that_ran_are_replaced_others_kept():
    text = (f'intro\n{figures.BEGIN}\n{figures.HEADER}\n'
            '| 2. full disk: archive | 5 | 0 | 0 | 0 |\n'
            '| 1. kill -9: prune | 3 | 0 | 0 | 0 |\n'
            f'{figures.END}\noutro\n')
    totals = {'1. kill -9: prune': {'trials': 20, 'failures': 0, 'bytes_lost': 0, 'outside_touched': 0},
              '10. bad repo: bare': {'trials': 1, 'failures': 0, 'bytes_lost': 0, 'outside_touched': 0}}
    out = figures.merged_readme(text, totals)
    body = out[out.index(figures.BEGIN) + len(figures.BEGIN):out.index(figures.END)].strip().splitlines()
    assert body[2:] == ['| 1. kill -9: prune | 20 | 0 | 0 | 0 |',
                        '| 2. full disk: archive | 5 | 0 | 0 | 0 |',
                        '| 10. bad repo: bare | 1 | 0 | 0 | 0 |']
    assert out.startswith('intro\n') and out.endswith('outro\n')


def test_the_readme_has_the_markers():
    text = figures.README.read_text(encoding='utf-8')
    assert text.index(figures.BEGIN) < text.index(figures.END)
