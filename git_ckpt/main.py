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


@cli.command(context_settings=CONTEXT)
@ROOT_OPTION
@click.option('--all', 'all_', is_flag=True, help='Every repository under the scratch root.')
@click.option('--json', 'as_json', is_flag=True, help='Machine-readable output (schema in the README).')
def status(cli_root: str | None, all_: bool, as_json: bool) -> int:
    """Scratch usage of every worktree of this repository, and of orphaned dirs.

    One row per worktree (and per scratch dir whose worktree was removed):
    size, checkpoints, latest step and age, state. Footer: total and free space.
    """
    from git_ckpt.commands.status import status as run
    return run(all_=all_, as_json=as_json, cli_root=cli_root)


@cli.command(context_settings=CONTEXT)
@ROOT_OPTION
@click.option('--keep', type=int, required=True, metavar='N', help='Keep the N highest steps per run (N >= 1).')
@click.option('--all-worktrees', is_flag=True, help="Prune every worktree's scratch dir of this repository.")
@click.option('--grace', type=float, default=C.PRUNE_GRACE_SECONDS, show_default=True, metavar='SECONDS',
              help='Keep anything modified this recently (a save may be under way).')
@click.option('--keep-best/--no-keep-best', default=True, show_default=True,
              help="Always keep the run's best checkpoint (best_model_checkpoint).")
@click.option('--dry-run', '-n', is_flag=True, help='Show what would be deleted and the space freed.')
@click.argument('path', required=False, metavar='[PATH]')
def prune(cli_root: str | None, keep: int, all_worktrees: bool, grace: float, keep_best: bool,
          dry_run: bool, path: str | None) -> int:
    """Delete old checkpoints: keep the N highest steps of each run.

    Always kept too: the best checkpoint, every in-progress (tmp-checkpoint-*)
    or incomplete checkpoint, the most recently written one, and anything
    modified within --grace seconds. PATH limits it to one run dir.
    """
    from git_ckpt.commands.prune import prune_command as run
    return run(keep=keep, all_worktrees=all_worktrees, path=path, grace=grace, keep_best=keep_best,
               dry_run=dry_run, cli_root=cli_root)


ARCHIVE_TO = click.option('--to', metavar='DIR',
                          help='Archive dir (default: git config ckpt.archiveDir, else <root>/archive).')


@cli.command(context_settings=CONTEXT)
@ROOT_OPTION
@ARCHIVE_TO
@click.option('--orphans', is_flag=True, help='Archive every orphaned scratch dir of this repository.')
@click.option('--run', metavar='RUN', help='Archive only this run dir inside the scratch dir.')
@click.option('--format', 'fmt', type=click.Choice(C.ARCHIVE_FORMATS), default='dir', show_default=True,
              help='A plain directory, or one .tar.zst file (needs zstandard).')
@click.option('--delete-source', is_flag=True,
              help='After a verified copy, delete what was copied (a rename moves it anyway).')
@click.option('--dry-run', '-n', is_flag=True, help='Show what would be archived where, and how.')
@click.argument('worktree_arg', required=False, metavar='[WORKTREE]')
def archive(cli_root, to, orphans, run, fmt, delete_source, dry_run, worktree_arg) -> int:
    """Move a worktree's checkpoints (or one run, or the orphans) to an archive.

    Same filesystem: a rename, instant. Otherwise: a copy into NAME.partial,
    every file checked against a sha256 manifest, then renamed to NAME.
    NAME is the worktree name and the date; an existing archive is never
    overwritten. A rerun after a crash resumes the copy.
    """
    from git_ckpt.commands.archive import archive_command as run_command
    return run_command(worktree_arg=worktree_arg, to=to, orphans=orphans, run=run, fmt=fmt,
                       delete_source=delete_source, dry_run=dry_run, cli_root=cli_root)


@cli.command(context_settings=CONTEXT)
@ROOT_OPTION
@click.option('--force', is_flag=True, help='Replace checkpoints of the same name in the scratch dir.')
@click.argument('archive_arg', metavar='ARCHIVE')
@click.argument('worktree_arg', required=False, metavar='[WORKTREE]')
def restore(cli_root, force, archive_arg, worktree_arg) -> int:
    """Bring an archive back into a worktree's scratch dir, verified first.

    ARCHIVE is a path, or a name in the archive dir. A file or run already
    in the scratch dir is never overwritten unless --force.
    """
    from git_ckpt.commands.archive import restore_command
    return restore_command(archive_arg=archive_arg, worktree_arg=worktree_arg, force=force,
                           cli_root=cli_root)


def _action(archive_: bool, delete: bool, keep: bool = False) -> str | None:
    chosen = [name for name, on in (('archive', archive_), ('delete', delete), ('keep', keep)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f'choose one of --{" / --".join(chosen)}')
    return chosen[0] if chosen else None


@cli.command(context_settings=CONTEXT)
@ROOT_OPTION
@click.option('--archive', 'archive_', is_flag=True, help='Archive the scratch dir (then delete it).')
@click.option('--delete', is_flag=True, help='Delete the scratch dir.')
@click.option('--keep', is_flag=True, help='Keep the scratch dir (it becomes an orphan; see gc).')
@click.option('--yes', '-y', is_flag=True, help='Do not ask for confirmation before deleting.')
@click.option('--force', '-f', is_flag=True, help='Remove the worktree even if it is dirty (git worktree remove --force).')
@click.option('--dry-run', '-n', is_flag=True, help='Show what would happen.')
@click.argument('worktree_arg', metavar='WORKTREE')
def remove(cli_root, archive_, delete, keep, yes, force, dry_run, worktree_arg) -> int:
    """Remove a worktree, and archive, delete or keep its checkpoints.

    Shows the scratch dir's size and checkpoints; on a terminal asks
    [a]rchive / [d]elete / [k]eep / [c]ancel. Without a terminal and without
    a choice the scratch dir is kept. git worktree remove runs first: if git
    refuses (a dirty worktree without --force), the scratch dir is untouched.
    """
    from git_ckpt.commands.remove import remove_command
    return remove_command(worktree_arg=worktree_arg, action=_action(archive_, delete, keep), yes=yes,
                          force=force, dry_run=dry_run, cli_root=cli_root)


@cli.command(context_settings=CONTEXT)
@ROOT_OPTION
@click.option('--archive', 'archive_', is_flag=True, help='Archive every orphan (then delete it).')
@click.option('--delete', is_flag=True, help='Delete every orphan.')
@click.option('--dry-run', '-n', is_flag=True, help='List the orphans and what would happen.')
@click.option('--yes', '-y', is_flag=True, help='Do not ask for confirmation before deleting.')
def gc(cli_root, archive_, delete, dry_run, yes) -> int:
    """Archive or delete the scratch dirs of removed worktrees (orphans).

    Finds them however the worktree went (git worktree remove, rm -rf and
    git worktree prune, a re-added name). On a terminal without a flag, asks
    for each one; without a terminal and without a flag, only lists them.
    """
    from git_ckpt.commands.remove import gc_command
    return gc_command(action=_action(archive_, delete), dry_run=dry_run, yes=yes, cli_root=cli_root)


# Commands that report orphans themselves (or must stay silent on stderr).
NO_NOTICE = {'gc', 'remove', 'archive', 'status', 'doctor', '_hook'}


def _command_name(argv: list[str] | None) -> str | None:
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith('-')), None)


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
    command = _command_name(argv)
    if command in cli.commands and command not in NO_NOTICE:
        from git_ckpt.notice import after_command
        after_command()
    return result if isinstance(result, int) else 0
