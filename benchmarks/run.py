"""Benchmark runner: prints a markdown table of ratios measured in one run.

Every `benchmarks/bench_*.py` module exposes `rows(quick: bool) -> list[Row]`.
A row times a subject command against a baseline command in the same process
tree, on the same data, interleaved, and reports the ratio of medians.
Usage:  python benchmarks/run.py [--quick] [NAME ...]
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Row  # noqa: E402


def load(name: str):
    path = HERE / f'bench_{name}.py'
    spec = importlib.util.spec_from_file_location(f'bench_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='fewer repeats, smaller data')
    parser.add_argument('names', nargs='*', help='bench_<name>.py modules to run (default: all)')
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem[len('bench_'):] for p in HERE.glob('bench_*.py'))
    rows: list[Row] = []
    for name in names:
        rows.extend(load(name).rows(args.quick))
    print('| benchmark | subject | baseline | ratio | target | ok |')
    print('|---|---|---|---|---|---|')
    for row in rows:
        print(row.markdown())
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == '__main__':
    raise SystemExit(main())
