"""Render git-ckpt(1) from the click command tree.

`git ckpt --help` is turned by git into `git help ckpt`, i.e. `man git-ckpt`.
The page is generated from the CLI so it cannot drift:
    python -m git_ckpt.manpage > man/git-ckpt.1
and a test checks that the committed page equals the generated one.
"""
from __future__ import annotations

import inspect

import click

from git_ckpt import constants as C

_DATE = '2026'


def _roff(text: str) -> str:
    out = []
    for line in text.splitlines():
        line = line.replace('\\', '\\e').replace('-', '\\-')
        if line.startswith(('.', "'")):
            line = '\\&' + line
        out.append(line)
    return '\n'.join(out)


def _paragraphs(text: str) -> str:
    text = inspect.cleandoc(text)
    blocks = [b.strip('\n') for b in text.strip().split('\n\n')]
    return '\n.PP\n'.join(_roff(b) for b in blocks if b)


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    lines = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:
            continue
        name, help_text = record
        lines += ['.TP', f'.B {_roff(name)}', _roff(help_text or '')]
    return lines


def render(cli: click.Group) -> str:
    ctx = click.Context(cli, info_name='git ckpt')
    lines = [
        f'.TH GIT\\-CKPT 1 "{_DATE}" "git-ckpt {C.VERSION}" "Git Manual"',
        '.SH NAME',
        'git\\-ckpt \\- per\\-worktree checkpoint storage on scratch',
        '.SH SYNOPSIS',
        '.B git ckpt',
        '.RI [ options ] " command " [ args ]',
        '.SH DESCRIPTION',
        _paragraphs(cli.help or ''),
        '.SH COMMANDS',
    ]
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub_ctx = click.Context(command, info_name=name, parent=ctx)
        usage = ' '.join(command.collect_usage_pieces(sub_ctx))
        lines += ['.SS', f'.B git ckpt {name} {_roff(usage)}'.rstrip(), _paragraphs(command.help or '')]
        opts = _options(command, sub_ctx)
        if opts:
            lines += ['.PP', 'Options:', '.RS', *opts, '.RE']
    lines += [
        '.SH ENVIRONMENT',
        '.TP', f'.B {C.ENV_DIR}', 'The scratch dir itself; wins over everything, no git needed.',
        '.TP', f'.B {C.ENV_ROOT}', 'The scratch root (after \\-\\-root, before git config ckpt.root).',
        '.TP', f'.B {C.ENV_QUIET}', 'Set to 1 to silence informational messages.',
        '.SH FILES',
        f'Each managed scratch dir holds {_roff(C.MANIFEST_NAME)}; git\\-ckpt deletes nothing without one.',
        '.SH SEE ALSO',
        '.BR git-worktree (1),',
        '.BR githooks (5)',
        '',
    ]
    return '\n'.join(lines)


def main() -> int:
    from git_ckpt.main import cli
    print(render(cli), end='')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
