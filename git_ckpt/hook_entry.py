"""What the installed hook shims run: `git_ckpt.__main__.main(['_hook', NAME, *ARGS])`
(post-checkout, via `python -c`), or this module's main([NAME, *ARGS])
directly (pre-commit, via `python -S -c` with git_ckpt's dir from the hook's
INSTALL_PATH line).  Either way a missing package is exit 97 and the shim
falls back to `git-ckpt _hook NAME ARGS...` on PATH; the pre-commit framework
uses `git-ckpt _hook NAME`.

Standard library only: this runs on every checkout and commit, so it must not
pay for click, GitPython or rich.
"""
from __future__ import annotations

import os
import sys

from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError


def post_checkout(args: list[str]) -> int:
    """On `git worktree add`/clone (null previous ref): create the scratch dir.

    Never fails the checkout: any problem is one warning line and exit 0.
    """
    # The pre-commit framework passes the refs in its environment, not as args.
    previous = args[0] if args else os.environ.get('PRE_COMMIT_FROM_REF', '')
    if previous not in (C.NULL_SHA1, C.NULL_SHA256):
        return 0  # a branch switch; the shim normally filters these already
    try:
        from git_ckpt import worktree
        from git_ckpt.settings import quiet
        wt = worktree.current_worktree()
        if not (wt.common_dir / C.REPO_ID_FILE).is_file():
            # Not a repository `git ckpt init` set up (e.g. a clone under a
            # global core.hooksPath that holds our hook): leave it alone.
            return 0
        location = worktree.locate(wt)
        created = worktree.create_scratch_dir(location)
        if not quiet():
            if location.root.warning:
                print(f'git-ckpt: warning: {location.root.warning}', file=sys.stderr)
            if created:
                print(f'git-ckpt: scratch dir for {wt.top.name}: {location.scratch_dir}', file=sys.stderr)
    except (Exception, KeyboardInterrupt) as exc:
        _warn(exc)
        return 0
    for extra in POST_CHECKOUT_EXTRAS:
        try:  # one failing step does not keep the others from running
            extra(location)
        except (Exception, KeyboardInterrupt) as exc:
            _warn(exc)
    return 0


def _warn(exc: BaseException) -> None:
    """One line, never a traceback: the checkout itself has succeeded."""
    if isinstance(exc, GitCkptError):
        print(f'git-ckpt: warning: {exc} (checkout not affected)', file=sys.stderr)
    else:  # our bug: still never break a checkout over it
        print(f'git-ckpt: warning: post-checkout failed: {exc!r} (checkout not affected)', file=sys.stderr)


# Steps later features add to post-checkout (worktree links, orphan notice);
# each takes the new worktree's Location.
POST_CHECKOUT_EXTRAS: list = []


def pre_commit(args: list[str]) -> int:
    """The commit guard; args are `--allow PATTERN`s and, from the pre-commit
    framework, the filenames to check.  Exit 1 blocks the commit."""
    from git_ckpt.guard import main as guard_main
    return guard_main(args)


def run_guard_process(args: list[str]) -> None:
    """pre_commit(args) as this process's whole job (the pre-commit
    framework's `git-ckpt _hook pre-commit FILES...`): the process ends here,
    as the native shim's does.  Thousands of staged paths would trigger
    garbage collections for nothing, and tearing the interpreter down costs
    milliseconds once all is said and no child is left."""
    import gc
    gc.disable()
    code = pre_commit(args)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


def _create_links(location) -> None:
    from git_ckpt import links
    links.post_checkout(location)


POST_CHECKOUT_EXTRAS.append(_create_links)


def _orphan_notice(location) -> None:
    from git_ckpt.notice import post_checkout
    post_checkout(location)


POST_CHECKOUT_EXTRAS.append(_orphan_notice)

HOOKS = {
    'post-checkout': post_checkout,
    'pre-commit': pre_commit,
}


def version(args: list[str]) -> int:
    """What `git ckpt doctor` runs through an installed hook's own launcher:
    the version that launcher reaches."""
    print(f'git-ckpt {C.VERSION}')
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ['--version']:
        return version(argv[1:])
    if not argv or argv[0] not in HOOKS:
        print(f'git-ckpt: error: unknown hook {argv[:1]}; reinstall hooks with: git ckpt init',
              file=sys.stderr)
        return 2
    return HOOKS[argv[0]](argv[1:])

