"""`python -m git_ckpt` and the `git-ckpt` console script.

Four calls skip click (it costs ~20-30 ms to import, more than the work of
a warm call): the hooks (`_hook NAME ...`, standard library only by rule), a
plain `path` (scripts run "$(git ckpt path)" in loops), a plain `status`
(its cold scan is measured against `du -s`) and a plain `archive` (measured
against `cp -a`).  Anything else, including help and any option these do not
know, goes to the click CLI, which gives the same result with click's own
parsing and messages.
"""
from __future__ import annotations

import sys

ROOT = {'--root': 'cli_root'}


def parse_args(args: list[str], flags: dict[str, str], options: dict[str, str],
               arguments: tuple[str, ...] = ()) -> dict | None:
    """Parse `args` as click parses a command with these `flags` ({'--flag':
    name}), `options` taking one value ({'--opt': name}: `--opt VALUE` or
    `--opt=VALUE`, the last one wins) and up to len(arguments) positional
    arguments (their names, in order) -> {name: value}, with False / None for
    what is not given.  None when the arguments need the full CLI: help,
    errors, and anything unusual (a value that starts with '-', `--`)."""
    kwargs: dict = {name: False for name in flags.values()}
    kwargs.update({name: None for name in (*options.values(), *arguments)})
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        option, equals, value = arg.partition('=') if arg.startswith('--') else (arg, '', '')
        if arg in flags:
            kwargs[flags[arg]] = True
        elif option in options and equals:
            if not value:
                return None
            kwargs[options[option]] = value
        elif arg in options and i + 1 < len(args) and not args[i + 1].startswith('-'):
            kwargs[options[arg]] = args[i + 1]
            i += 1
        elif not arg.startswith('-') and len(positional) < len(arguments):
            positional.append(arg)
        else:
            return None
        i += 1
    kwargs.update(zip(arguments, positional))
    return kwargs


def parse_simple_args(args: list[str], flags: dict[str, str]) -> dict | None:
    """`[FLAG ...] [--root DIR]` -> {'cli_root': DIR or None, <flag name>: bool, ...};
    None when the arguments need the full CLI (help, errors, anything unusual)."""
    return parse_args(args, flags, ROOT)


def parse_path_args(args: list[str]) -> dict | None:
    """`path [--no-create] [--root DIR]` -> keyword arguments of commands.path.path."""
    kwargs = parse_simple_args(args, {'--no-create': 'no_create'})
    if kwargs is None:
        return None
    return {'create': not kwargs.pop('no_create'), 'cli_root': kwargs['cli_root']}


def parse_status_args(args: list[str]) -> dict | None:
    """`status [--all] [--json] [--root DIR]` -> keyword arguments of commands.status.status."""
    return parse_simple_args(args, {'--all': 'all_', '--json': 'as_json'})


ARCHIVE_FLAGS = {'--orphans': 'orphans', '--delete-source': 'delete_source', '--dry-run': 'dry_run',
                 '-n': 'dry_run'}
ARCHIVE_OPTIONS = {**ROOT, '--to': 'to', '--run': 'run', '--format': 'fmt'}


def parse_archive_args(args: list[str]) -> dict | None:
    """`archive [WORKTREE] [--to DIR] [--orphans] [--run RUN] [--format dir|tar.zst]
    [--delete-source] [--dry-run|-n] [--root DIR]` -> keyword arguments of
    commands.archive.archive_command (a --format click would refuse: None)."""
    from git_ckpt.constants import ARCHIVE_FORMATS
    kwargs = parse_args(args, ARCHIVE_FLAGS, ARCHIVE_OPTIONS, ('worktree_arg',))
    if kwargs is None:
        return None
    if kwargs['fmt'] is None:
        kwargs['fmt'] = 'dir'   # click's default
    return kwargs if kwargs['fmt'] in ARCHIVE_FORMATS else None


FAST = {'path': parse_path_args, 'status': parse_status_args, 'archive': parse_archive_args}


def _run_fast(command: str, kwargs: dict) -> int:
    from git_ckpt.errors import report
    try:
        if command == 'path':
            from git_ckpt.commands.path import path
            return path(**kwargs)
        if command == 'archive':
            # git's two calls run while the copy engine is being imported.
            from git_ckpt.worktree import start_current_with_settings
            started = start_current_with_settings()
            from git_ckpt.commands.archive import archive_command
            return archive_command(**kwargs, started=started)
        from git_ckpt.commands.status import status
        return status(**kwargs)
    except (EOFError, KeyboardInterrupt):
        # As click reports them: a blank line closes the terminal's ^C echo.
        print(file=sys.stderr)
        print('git-ckpt: aborted', file=sys.stderr)
        return 130
    except Exception as exc:
        return report(exc)


def main(argv: list[str] | None = None) -> int:
    whole_process = argv is None  # this process's own command line (not a caller's list)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['_hook']:
        # The hook path: standard library only, so dispatch before click loads.
        from git_ckpt.hook_entry import main as hook_main
        if whole_process and argv[1:2] == ['pre-commit']:
            from git_ckpt.hook_entry import run_guard_process
            run_guard_process(argv[2:])
        return hook_main(argv[1:])
    parse = FAST.get(argv[0] if argv else '')
    kwargs = parse(argv[1:]) if parse else None
    if kwargs is not None:
        return _run_fast(argv[0], kwargs)
    from git_ckpt.main import main as cli_main
    return cli_main(argv)


if __name__ == '__main__':
    raise SystemExit(main())
