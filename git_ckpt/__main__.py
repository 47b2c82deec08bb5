"""`python -m git_ckpt` and the `git-ckpt` console script.

Three calls skip click (it costs ~20-30 ms to import, more than the work of
a warm call): the hooks (`_hook NAME ...`, standard library only by rule), a
plain `path` (scripts run "$(git ckpt path)" in loops) and a plain `status`
(its cold scan is measured against `du -s`).  Anything else, including help
and any option these do not know, goes to the click CLI, which gives the
same result with click's own parsing and messages.
"""
from __future__ import annotations

import sys


def parse_simple_args(args: list[str], flags: dict[str, str]) -> dict | None:
    """`[FLAG ...] [--root DIR]` -> {'cli_root': DIR or None, <flag name>: bool, ...};
    None when the arguments need the full CLI (help, errors, anything unusual)."""
    kwargs: dict = {name: False for name in flags.values()}
    kwargs['cli_root'] = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in flags:
            kwargs[flags[arg]] = True
        elif arg == '--root' and i + 1 < len(args) and not args[i + 1].startswith('-'):
            kwargs['cli_root'] = args[i + 1]
            i += 1
        elif arg.startswith('--root=') and len(arg) > len('--root='):
            kwargs['cli_root'] = arg[len('--root='):]
        else:
            return None
        i += 1
    return kwargs


def parse_path_args(args: list[str]) -> dict | None:
    """`path [--no-create] [--root DIR]` -> keyword arguments of commands.path.path."""
    kwargs = parse_simple_args(args, {'--no-create': 'no_create'})
    if kwargs is None:
        return None
    return {'create': not kwargs.pop('no_create'), 'cli_root': kwargs['cli_root']}


def parse_status_args(args: list[str]) -> dict | None:
    """`status [--all] [--json] [--root DIR]` -> keyword arguments of commands.status.status."""
    return parse_simple_args(args, {'--all': 'all_', '--json': 'as_json'})


def _run_fast(command: str, kwargs: dict) -> int:
    from git_ckpt.errors import report
    try:
        if command == 'path':
            from git_ckpt.commands.path import path
            return path(**kwargs)
        from git_ckpt.commands.status import status
        return status(**kwargs)
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['_hook']:
        # The hook path: standard library only, so dispatch before click loads.
        from git_ckpt.hook_entry import main as hook_main
        return hook_main(argv[1:])
    parse = {'path': parse_path_args, 'status': parse_status_args}.get(argv[0] if argv else '')
    kwargs = parse(argv[1:]) if parse else None
    if kwargs is not None:
        return _run_fast(argv[0], kwargs)
    from git_ckpt.main import main as cli_main
    return cli_main(argv)


if __name__ == '__main__':
    raise SystemExit(main())
