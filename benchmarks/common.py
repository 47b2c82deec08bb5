"""Shared timing helpers for the benchmarks (see run.py)."""
from __future__ import annotations

import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass
class Row:
    name: str
    subject_s: float     # median seconds (or another unit, see note)
    baseline_s: float
    target: float | None = None   # ratio must be <= target (None: informational)
    note: str = ''
    unit: str = 's'

    @property
    def ratio(self) -> float:
        return self.subject_s / self.baseline_s if self.baseline_s else float('inf')

    @property
    def ok(self) -> bool | None:
        return None if self.target is None else self.ratio <= self.target

    def markdown(self) -> str:
        fmt = (lambda v: f'{v * 1000:.1f} ms') if self.unit == 's' else (lambda v: f'{v:g} {self.unit}')
        target = '' if self.target is None else f'<= {self.target:g}x'
        ok = {None: '', True: 'yes', False: '**no**'}[self.ok]
        name = f'{self.name} ({self.note})' if self.note else self.name
        return f'| {name} | {fmt(self.subject_s)} | {fmt(self.baseline_s)} | {self.ratio:.2f}x | {target} | {ok} |'


def time_once(cmd: Sequence[str] | Callable[[], object], **kwargs) -> float:
    start = time.perf_counter()
    if callable(cmd):
        cmd()
    else:
        subprocess.run(list(cmd), check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def compare(subject, baseline, repeats: int = 15, setup: Callable[[], object] | None = None,
            **kwargs) -> tuple[float, float]:
    """Median seconds of subject and baseline, interleaved so drift hits both."""
    s_times, b_times = [], []
    for _ in range(repeats):
        if setup:
            setup()
        s_times.append(time_once(subject, **kwargs))
        if setup:
            setup()
        b_times.append(time_once(baseline, **kwargs))
    return statistics.median(s_times), statistics.median(b_times)


def hermetic_env(tmp: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=os.path.join(tmp, 'home'), GIT_CONFIG_GLOBAL=os.path.join(tmp, 'gitconfig'),
               GIT_CONFIG_NOSYSTEM='1', GIT_CKPT_ROOT=os.path.join(tmp, 'scratch'))
    os.makedirs(env['HOME'], exist_ok=True)
    os.makedirs(env['GIT_CKPT_ROOT'], mode=0o700, exist_ok=True)
    with open(env['GIT_CONFIG_GLOBAL'], 'w') as f:
        f.write('[user]\n\tname = Bench\n\temail = bench@example.invalid\n[init]\n\tdefaultBranch = main\n')
    return env
