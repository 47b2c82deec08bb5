"""`git_ckpt.setup()`: send transformers checkpoints to the worktree's scratch dir.

    import git_ckpt
    git_ckpt.setup()          # before or after importing transformers

Any `TrainingArguments.output_dir` that is relative, or inside the worktree,
becomes the same relative path under the scratch dir; an absolute path
outside the worktree is left alone.  A symlink is left at the original place.
Standard library only, and never imports transformers or torch: the patch is
applied by an import hook when transformers is loaded (see hf_patch).
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from git_ckpt import constants as C
from git_ckpt import hf_patch
from git_ckpt.errors import GitCkptError
from git_ckpt.records import record
from git_ckpt.hf_patch import is_main_process, warn

HF_CACHE_NAME = 'huggingface'  # <root>/huggingface: HF_HOME shared by all worktrees


class _Config(record('_Config', 'scratch base link quiet git_dir project_name')):
    """scratch: the worktree's scratch dir (real path); base: what relative
    output_dirs are relative to (the worktree top); git_dir: the common git
    dir, for info/exclude (None without git)."""
    __slots__ = ()


_config: _Config | None = None
_exported_dir: str | None = None   # the GIT_CKPT_DIR value we set ourselves
_announced: set[str] = set()
_keep: int | None = None           # setup(keep=N)
_keep_warned: set[str] = set()


def _quiet(quiet: bool) -> bool:
    from git_ckpt.settings import quiet as env_quiet
    return quiet or env_quiet()


def _say(config: _Config, message: str) -> None:
    """Informational line: rank 0 only, silenced by quiet=True / GIT_CKPT_QUIET=1."""
    if config.quiet or not is_main_process():
        return
    print(f'git-ckpt: {message}', file=sys.stderr, flush=True)


def _env_dir_is_ours(project_name: str | None) -> bool:
    """GIT_CKPT_DIR was exported by an earlier setup() here with another name."""
    return (_exported_dir is not None and os.environ.get(C.ENV_DIR) == _exported_dir
            and _config is not None and _config.project_name != project_name)


def _resolve(project_name: str | None, create: bool):
    """(scratch dir, worktree top or None, common git dir or None, root or None)."""
    from git_ckpt import worktree
    from_env = None if _env_dir_is_ours(project_name) else worktree.dir_from_env()
    if from_env is not None:
        # A job without the repository (or a child of a process that ran setup()):
        # no git at all.  The worktree top comes along in GIT_CKPT_WORKTREE.
        if create:
            _make_env_dir(from_env)
            _mark_env_dir(Path(os.path.realpath(from_env)))
        top = Path(os.environ[C.ENV_WORKTREE]) if os.environ.get(C.ENV_WORKTREE) else None
        return from_env, top, _common_git_dir(top) if top else None, None
    location = worktree.locate_current(project_name=project_name)
    wt = location.worktree
    if create:
        worktree.create_scratch_dir(location)
        if location.root.warning:
            warn(location.root.warning)
    return location.scratch_dir, wt.top, wt.common_dir, location.root_real


def _common_git_dir(top: Path) -> Path | None:
    """The repository's common git dir, read from top/.git without running git."""
    dotgit = top / '.git'
    if dotgit.is_dir():
        return dotgit
    try:  # a linked worktree: "gitdir: <admin dir>", which holds "commondir"
        text = dotgit.read_text(encoding='utf-8').strip()
        if not text.startswith('gitdir:'):
            return None
        admin = Path(os.path.normpath(top / text[len('gitdir:'):].strip()))
    except OSError:
        return None
    try:
        return Path(os.path.normpath(admin / (admin / 'commondir').read_text(encoding='utf-8').strip()))
    except FileNotFoundError:  # a submodule (.git/modules/NAME) or --separate-git-dir: its own common dir
        return admin if (admin / 'HEAD').is_file() else None
    except OSError:
        return None


def _make_env_dir(path: Path) -> None:
    from git_ckpt.scratch import ensure_standalone_dir
    try:
        # The same checks as `git ckpt path` with GIT_CKPT_DIR: not a link,
        # not someone else's pre-created dir; what is created is 0700.
        ensure_standalone_dir(path)
    except OSError as exc:
        raise GitCkptError(f'cannot create {C.ENV_DIR}={path}: {exc.strerror}',
                           f'point {C.ENV_DIR} at a writable directory or unset it')
    if not os.access(path, os.W_OK | os.X_OK):
        raise GitCkptError(f'{C.ENV_DIR}={path} is not writable by you',
                           f'point {C.ENV_DIR} at a writable directory or unset it')


def _mark_env_dir(path: Path) -> None:
    """Manage the GIT_CKPT_DIR dir (a manifest) when it is new or empty, so
    `git ckpt prune` and keep= may delete old checkpoints in it; a dir that
    already held files stays the user's: keep= is told so now, not at each save."""
    from git_ckpt.scratch import mark_standalone_dir
    why_not = mark_standalone_dir(path)
    if why_not is not None and _keep is not None:
        _warn_keep_once(f'setup(keep={_keep}): nothing in {C.ENV_DIR}={path} will be pruned: {why_not} '
                        f'(git-ckpt deletes only in dirs it manages); point {C.ENV_DIR} at a new or '
                        'empty directory, or set save_total_limit')


def _warn_keep_once(message: str) -> None:
    if message not in _keep_warned:  # once per process: keep= runs after every save
        _keep_warned.add(message)
        warn(message)


def scratch_dir(project_name: str | None = None) -> Path:
    """This worktree's scratch dir (GIT_CKPT_DIR if set), without patching anything."""
    return _resolve(project_name, create=False)[0]


def setup(project_name: str | None = None, link: bool = True, quiet: bool = False,
          hf_cache: bool = False, keep: int | None = None) -> Path:
    """Redirect transformers' output_dir into this worktree's scratch dir.

    keep=N prunes each run after every checkpoint save with the policy of
    `git ckpt prune --keep N` (see _prune_run).  Returns the scratch dir.  Raises GitCkptError (problem and fix in one line)
    when the scratch root is unusable, so a run fails before training, not at
    its first save.  Safe to call twice and from every rank.
    """
    global _config, _exported_dir, _keep
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise GitCkptError(f'setup(keep=N) needs an integer N of at least 1 (got {keep!r})',
                           'pass keep=1 or more, or leave keep out to keep every checkpoint')
    if project_name is not None:
        from git_ckpt.settings import validate_name
        validate_name(project_name)
    _keep = keep
    root = None
    if _config is not None and _config.project_name == project_name and os.environ.get(C.ENV_DIR) == _exported_dir:
        # A repeated call: keep what the first one resolved, no git calls.
        config = _config._replace(link=link, quiet=_quiet(quiet))
        scratch = config.scratch
    else:
        scratch, top, git_dir, root = _resolve(project_name, create=True)
        scratch = Path(os.path.realpath(scratch))
        base = Path(os.path.realpath(top)) if top is not None else Path(os.getcwd())
        config = _Config(scratch, base, link, _quiet(quiet), git_dir, project_name)
    changed = _config is None or (config.scratch, config.base) != (_config.scratch, _config.base)
    _config = config
    # Children (torchrun workers, dataloader workers, evals) agree without git.
    os.environ[C.ENV_DIR] = _exported_dir = os.fspath(scratch)
    os.environ[C.ENV_WORKTREE] = os.fspath(config.base)
    if hf_cache:
        _setup_hf_cache(scratch, root, config)
    state = hf_patch.install(_rewrite_output_dir, _prune_run if keep is not None else None)
    if changed and state != 'unsupported':
        _say(config, f'checkpoints go to {scratch} (output_dir paths in {config.base} are redirected there)')
    return scratch


def _prune_run(output_dir: str, step: int | None = None) -> None:
    """setup(keep=N): called by the Trainer callback after each checkpoint save,
    on the process that saves.  Prunes only the run dir that checkpoint-<step>
    was saved in (see _saved_run_dir): output_dir, or a search trial's subdir.

    Grace 0: this run's complete checkpoints were finished by this very process
    before on_save, so a grace window would only stop keep= from working.
    In-progress (tmp-checkpoint-*) and incomplete ones are kept by the policy
    whatever the grace.  Never raises: a failed prune must not stop training.
    """
    keep = _keep
    if keep is None:
        return
    from git_ckpt import pruning
    run = _saved_run_dir(Path(os.path.abspath(output_dir)), step)
    try:
        scratch, _ = pruning.locate_run(run)
        plan = pruning.prune_scratch_dir(scratch, keep, run_path=run, exact=True, grace=0,
                                         command=f'prune --keep {keep}')
        # The scan covers the whole scratch dir: report only what concerns this run.
        mine = [p for p in plan.problems if p.startswith((os.fspath(run) + os.sep, os.fspath(run) + ':'))]
        messages = [f'setup(keep={keep}): {p}' for p in mine + plan.failures]
    except GitCkptError as exc:
        messages = [f'setup(keep={keep}): {run} not pruned this time: {exc}']
    except Exception as exc:  # noqa: BLE001 (an unexpected bug must not end the run either)
        messages = [f'setup(keep={keep}): pruning {run} failed ({type(exc).__name__}: {exc})']
    for message in messages:
        _warn_keep_once(message)


def _saved_run_dir(output_dir: Path, step: int | None) -> Path:
    """The dir holding the checkpoint-<step> just saved: output_dir itself, or
    during Trainer.hyperparameter_search the trial's subdir (run-<trial>, or
    what hp_name returns): args.output_dir stays the base there while each
    trial saves into its own dir (Trainer._get_output_dir).  Several dirs may
    hold a checkpoint-<step> (earlier trials): the newest one was just
    written.  Only immediate subdirs, as transformers makes no deeper ones."""
    if step is None:
        return output_dir
    name = f'{C.CHECKPOINT_PREFIX}{step}'
    candidates = [output_dir]
    try:
        with os.scandir(output_dir) as entries:
            candidates += [Path(e.path) for e in entries
                           if not e.name.startswith((C.CHECKPOINT_PREFIX, C.TMP_CHECKPOINT_PREFIX))
                           and e.is_dir(follow_symlinks=False)]
    except OSError:
        return output_dir
    newest, newest_mtime = output_dir, None
    for candidate in candidates:
        try:
            mtime = os.stat(candidate / name, follow_symlinks=False).st_mtime_ns
        except OSError:
            continue
        if newest_mtime is None or mtime > newest_mtime:
            newest, newest_mtime = candidate, mtime
    return newest


def _setup_hf_cache(scratch: Path, root: Path | None, config: _Config) -> None:
    if os.environ.get('HF_HOME'):
        return  # the user's choice wins
    if root is None:
        # GIT_CKPT_DIR mode: <root>/<project>/<worktree> when it is one of ours.
        if (scratch.parent / C.REPO_MANIFEST_NAME).is_file():
            root = scratch.parent.parent
        else:
            from git_ckpt.settings import resolve_root
            from git_ckpt.scratch import check_root
            choice = resolve_root()
            root = check_root(choice.path, create_fallback=choice.warning is not None)
    from git_ckpt.scratch import ensure_private_dir
    cache = ensure_private_dir(root, HF_CACHE_NAME)
    os.environ['HF_HOME'] = os.fspath(cache)
    if 'huggingface_hub' in sys.modules:
        warn(f'huggingface_hub was imported before setup(hf_cache=True) and keeps its old cache paths '
             f'in this process; call setup() before importing transformers, or export HF_HOME={cache}')
    else:
        _say(config, f'HF_HOME={cache}')


def _under(path: str, parent: str) -> str | None:
    """path relative to parent ('.' for parent itself), or None if outside."""
    if path == parent:
        return '.'
    prefix = parent.rstrip(os.sep) + os.sep
    return path[len(prefix):] if path.startswith(prefix) else None


def _rewrite_output_dir(output_dir):
    """The hook hf_patch calls with every TrainingArguments.output_dir."""
    config = _config
    if config is None or output_dir is None:
        return output_dir
    path = os.path.abspath(os.path.expanduser(os.fspath(output_dir)))
    scratch, base = os.fspath(config.scratch), os.fspath(config.base)
    if _under(path, scratch) is not None:
        return output_dir  # already redirected (a copy of redirected args)
    rel = _under(path, base)
    if rel is None:
        real = os.path.realpath(path)
        if _under(real, scratch) is not None:
            return output_dir  # through our own link, or a path already under scratch
        rel = _under(real, base)
    if rel is None:
        return output_dir  # absolute path outside the worktree: the user's choice
    from git_ckpt.scratch import ensure_private_dir
    target = config.scratch if rel == '.' else ensure_private_dir(config.scratch, rel)
    if os.fspath(target) not in _announced:  # link and talk once per directory and process
        _announced.add(os.fspath(target))
        where = _link(config, Path(rel)) if config.link and rel != '.' else ''
        _say(config, f'output_dir {output_dir} -> {target}{where}')
    return os.fspath(target)


def _link(config: _Config, rel: Path) -> str:
    """Leave a symlink in the worktree at the first missing component of rel.

    Never replaces data: a non-empty real directory or a foreign link gets a
    warning.  Every rank may get here at once, so each decision is taken on
    one lstat() and re-checked when we lose a race: a link that appeared
    meanwhile and points to the same place is fine.
    """
    parts = rel.parts
    here = config.base
    for i, part in enumerate(parts):
        here = here / part
        target = config.scratch.joinpath(*parts[:i + 1])
        last = i == len(parts) - 1
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            warn(f'cannot inspect {here}: {exc.strerror}; no link made, checkpoints go to {target}')
            return ''
        if mode is not None and stat.S_ISDIR(mode):
            if not last:
                continue  # a real parent such as runs/: link inside it
            try:
                os.rmdir(here)  # succeeds only when empty: nothing is lost
            except OSError:
                if not os.path.islink(here):  # (another rank may have just replaced it)
                    warn(f'{here} is a real directory in the worktree, so no link was made; new checkpoints '
                         f'go to {target}: move the old ones there with `git ckpt migrate {rel}`')
                    return ''
                mode = stat.S_IFLNK
            else:
                mode = None
        if mode is None:
            try:
                os.symlink(target, here, target_is_directory=True)
            except FileExistsError:
                pass  # another rank won: judged below like any existing link
            except OSError as exc:
                warn(f'cannot create link {here}: {exc.strerror}; checkpoints go to {target}')
                return ''
            else:
                _exclude(config, here)
                return f' (link: {here})'
        if os.path.islink(here) or mode == stat.S_IFLNK:
            if os.path.realpath(here) != os.fspath(target):
                warn(f'{here} is a link to {os.path.realpath(here)}, not to {target}; left alone '
                     f'(checkpoints go to {target})')
                return ''
            return f' (link: {here})'
        warn(f'{here} exists and is not a directory, so no link was made; checkpoints go to {target}')
        return ''
    return ''


def _exclude(config: _Config, link: Path) -> None:
    """Keep the link out of `git add -A`: a line in info/exclude (local, untracked)."""
    if config.git_dir is None:
        return
    line = '/' + link.relative_to(config.base).as_posix()
    path = config.git_dir / 'info' / 'exclude'
    try:
        text = path.read_text(encoding='utf-8') if path.exists() else ''
        if line in text.splitlines():
            return
        path.parent.mkdir(exist_ok=True)
        with open(path, 'a', encoding='utf-8') as f:
            f.write(('' if text.endswith('\n') or not text else '\n') + line + '\n')
    except OSError as exc:
        warn(f'cannot add {line} to {path}: {exc.strerror}; do not commit the link {link}')
