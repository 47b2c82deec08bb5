"""The `git ckpt` command line: wiring only; each command lives in commands/."""
from __future__ import annotations

import sys

import click

from git_ckpt import constants as C
from git_ckpt.errors import report

CONTEXT = {'help_option_names': ['-h', '--help'], 'max_content_width': 100}
ROOT_OPTION = click.option('--root', 'cli_root', metavar='DIR',
                           help='Scratch root for this call (overrides GIT_CKPT_ROOT and ckpt.root).')


@click.group(context_settings=CONTEXT)
@click.version_option(C.VERSION, '-V', '--version', prog_name='git-ckpt')
def cli() -> None:
    """Per-worktree checkpoint storage on scratch, for ML experiments in git worktrees.

    Every worktree of a repository gets its own directory under a scratch root;
    hooks create it on `git worktree add` and keep checkpoints out of commits.
    """


@cli.command(context_settings=CONTEXT)
@click.option('--root', 'cli_root', metavar='DIR',
              help="Scratch root to record as ckpt.root in this repository's git config.")
@click.option('--global', 'global_', is_flag=True,
              help='Record --root in the global git config instead (for all your repositories).')
@click.option('--name', metavar='NAME', help='Project name to use instead of the repository name.')
@click.option('--pre-commit-config', 'pre_commit_config', is_flag=True,
              help='Add the git-ckpt hooks to .pre-commit-config.yaml (pre-commit framework) '
                   'instead of installing git hooks.')
def init(cli_root: str | None, global_: bool, name: str | None, pre_commit_config: bool) -> int:
    """Set up this repository: root, hooks, scratch dirs, .gitignore block.

    Records the root (with --root), installs the post-checkout hook into the
    hooks dir shared by all worktrees, creates the scratch dir of every
    existing worktree and keeps one marked block in .gitignore.  Idempotent:
    running it again changes nothing that is already right.
    """
    from git_ckpt.commands.install import init as run
    return run(cli_root=cli_root, global_=global_, name=name, pre_commit_config=pre_commit_config)


@cli.command(context_settings=CONTEXT)
@ROOT_OPTION
@click.option('--no-create', is_flag=True, help='Only print the path; do not create the directory.')
def path(cli_root: str | None, no_create: bool) -> int:
    """Print this worktree's scratch dir (creating it if missing).

    GIT_CKPT_DIR, when set, is printed as is (no git needed).
    Shell use: --output_dir "$(git ckpt path)/run1"
    """
    from git_ckpt.commands.path import path as run
    return run(create=not no_create, cli_root=cli_root)


@cli.command(context_settings=CONTEXT)
def uninstall() -> int:
    """Remove git-ckpt's hooks and restore the hooks that were there before."""
    from git_ckpt.commands.install import uninstall as run
    return run()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        # Bare `git ckpt`: the help, on stdout, not an error.
        argv = ['-h']
    try:
        result = cli.main(args=argv, prog_name='git ckpt', standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        print('git-ckpt: aborted', file=sys.stderr)
        return 130
    except click.ClickException as exc:
        # One line, not click's usage block.
        message = exc.format_message().strip().rstrip('.').replace('\n', ' ')
        print(f'git-ckpt: error: {message}; see git ckpt -h', file=sys.stderr)
        return exc.exit_code
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)
    return result if isinstance(result, int) else 0
