"""`python -m git_ckpt` and the `git-ckpt` console script.

Two calls skip click (it costs ~30 ms to import, more than the work itself):
the hooks (`_hook NAME ...`, standard library only by rule) and a plain
`path` (scripts run "$(git ckpt path)" in loops).  Anything else, including
help and any option `path` does not know, goes to the click CLI.
"""
from __future__ import annotations

import sys


def parse_path_args(args: list[str]) -> dict | None:
    """`path [--no-create] [--root DIR]` -> keyword arguments; None when the
    arguments need the full CLI (help, errors, anything unusual)."""
    create, cli_root = True, None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == '--no-create':
            create = False
        elif arg == '--root' and i + 1 < len(args) and not args[i + 1].startswith('-'):
            cli_root = args[i + 1]
            i += 1
        elif arg.startswith('--root=') and len(arg) > len('--root='):
            cli_root = arg[len('--root='):]
        else:
            return None
        i += 1
    return {'create': create, 'cli_root': cli_root}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['_hook']:
        # The hook path: standard library only, so dispatch before click loads.
        from git_ckpt.hook_entry import main as hook_main
        return hook_main(argv[1:])
    if argv[:1] == ['path']:
        kwargs = parse_path_args(argv[1:])
        if kwargs is not None:
            from git_ckpt.commands.path import path
            from git_ckpt.errors import report
            try:
                return path(**kwargs)
            except (Exception, KeyboardInterrupt) as exc:
                return report(exc)
    from git_ckpt.main import main as cli_main
    return cli_main(argv)


if __name__ == '__main__':
    raise SystemExit(main())
