"""`git ckpt doctor`: print every check with its fix; exit 1 if any failed."""
from __future__ import annotations

import json
import sys

from git_ckpt import constants as C
from git_ckpt import doctor

_MARKS = {doctor.OK: ('✓', 'OK', 'green'), doctor.WARN: ('!', 'WARN', 'yellow'),
          doctor.FAIL: ('✗', 'FAIL', 'red'), doctor.SKIP: ('-', 'SKIP', None)}


def _can_print(text: str) -> bool:
    try:
        text.encode(sys.stdout.encoding or 'ascii')
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def render(check: doctor.Check, *, unicode: bool, color: bool) -> str:
    glyph, word, colour = _MARKS[check.status]
    mark = glyph if unicode else word
    if color and colour:
        import click
        mark = click.style(mark, fg=colour, bold=True)
    line = f'{mark} {check.message}'
    if check.fix and check.status in (doctor.FAIL, doctor.WARN):
        line += f'; fix: {check.fix}'
    return line


def summary(checks: list[doctor.Check]) -> dict:
    problems = sum(c.status == doctor.FAIL for c in checks)
    warnings = sum(c.status == doctor.WARN for c in checks)
    return {'schema': C.DOCTOR_JSON_SCHEMA, 'version': C.VERSION, 'ok': problems == 0,
            'problems': problems, 'warnings': warnings, 'checks': [c.as_json() for c in checks]}


def doctor_command(*, as_json: bool) -> int:
    from git_ckpt.output import use_color
    checks = doctor.run_checks()
    report = summary(checks)
    if as_json:
        print(json.dumps(report, indent=2))
        return doctor.exit_code(checks)
    unicode = _can_print('✓✗')
    color = use_color()
    encoding = sys.stdout.encoding or 'ascii'
    for check in checks:
        line = render(check, unicode=unicode, color=color)
        # A path the terminal cannot show is escaped, not a crash.
        print(line.encode(encoding, 'backslashreplace').decode(encoding, 'replace'))
    verdict = 'all good' if report['ok'] else f'{report["problems"]} problem(s)'
    print(f'doctor: {verdict}, {report["warnings"]} warning(s)')
    return doctor.exit_code(checks)
