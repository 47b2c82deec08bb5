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
@click.option('--link', 'link_paths', metavar='PATH', multiple=True,
              help='Also link PATH into scratch, as `git ckpt link PATH` (repeatable).')
@click.option('--pre-commit-config', 'pre_commit_config', is_flag=True,
              help='Add the git-ckpt hooks to .pre-commit-config.yaml (pre-commit framework) '
                   'instead of installing git hooks.')
def init(cli_root: str | None, global_: bool, name: str | None, link_paths: tuple[str, ...],
         pre_commit_config: bool) -> int:
    """Set up this repository: root, hooks, scratch dirs, .gitignore block.

    Records the root (with --root), installs the post-checkout hook into the
    hooks dir shared by all worktrees, creates the scratch dir of every
    existing worktree and keeps one marked block in .gitignore.  Idempotent:
    running it again changes nothing that is already right.
    """
    from git_ckpt.commands.install import init as run
    return run(cli_root=cli_root, global_=global_, name=name, link_paths=link_paths,
               pre_commit_config=pre_commit_config)


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


@cli.command(context_settings=CONTEXT)
@click.option('--global', 'global_', is_flag=True,
              help='Record the links in the global git config (every repository).')
@click.argument('paths', nargs=-1, metavar='[PATH]...')
def link(paths: tuple[str, ...], global_: bool) -> int:
    """Make each PATH in this worktree a symlink to the same path in its scratch dir.

    The paths are recorded in git config ckpt.link; new worktrees get the links
    from the post-checkout hook.  Without PATH: (re)create the configured links here.
    A directory that already holds data is refused: use git ckpt migrate PATH.
    """
    from git_ckpt.commands.links import link as run
    return run(paths, global_=global_)


@cli.command(context_settings=CONTEXT)
@click.option('--global', 'global_', is_flag=True, help='Remove the links from the global git config.')
@click.argument('paths', nargs=-1, required=True, metavar='PATH...')
def unlink(paths: tuple[str, ...], global_: bool) -> int:
    """Remove git-ckpt's link at each PATH and forget it; the data stays in scratch."""
    from git_ckpt.commands.links import unlink as run
    return run(paths, global_=global_)


@cli.command(context_settings=CONTEXT)
@click.option('--hf-cache', is_flag=True,
              help='Move the Hugging Face cache ($HF_HOME or ~/.cache/huggingface) to the scratch root.')
@click.option('--dry-run', '-n', is_flag=True, help='Show what would move and how; change nothing.')
@click.option('--yes', '-y', is_flag=True, help='Move every proposed candidate without asking.')
@click.argument('paths', nargs=-1, metavar='[PATH]...')
def migrate(paths: tuple[str, ...], hf_cache: bool, dry_run: bool, yes: bool) -> int:
    """Move data already in the worktree into its scratch dir and leave a link.

    Same filesystem: a rename.  Otherwise: copy, verify checksums, then delete
    the source; an interrupted run (kill, full disk) is resumed by rerunning.
    Without PATH: proposes checkpoint dirs, .art, outputs and configured links
    that still hold data (asks on a terminal; --yes takes them all).
    """
    from git_ckpt.commands.migrate import migrate_command as run
    return run(paths, hf_cache=hf_cache, dry_run=dry_run, yes=yes)


@cli.command(context_settings=CONTEXT)
@click.option('--json', 'as_json', is_flag=True, help='Machine-readable report (stable schema).')
def doctor(as_json: bool) -> int:
    """Check the setup: root, permissions, filesystems, free space, hooks, ignore
    block, worktree dirs, orphans, transformers, HF cache, links.

    Each check prints one line (✓ ok, ! warning, ✗ problem) with its fix.
    Exits 1 when something is wrong (warnings alone exit 0), so it can run in CI
    or a login script.
    """
    from git_ckpt.commands.doctor import doctor_command as run
    return run(as_json=as_json)


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
