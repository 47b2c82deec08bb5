"""The transformers side of `setup()`: an import hook and two patches.

We patch `TrainingArguments.__post_init__` so that `output_dir` is rewritten
to a path under the worktree's scratch dir when the arguments are built.
Everything the Trainer does afterwards (rotation, resume, best model,
save_model, hub pushes) then reads one consistent directory, unlike the
seed's PREFIX_CHECKPOINT_DIR patch (see the README).

`Trainer._save_checkpoint` is wrapped so that a save that fills the disk
leaves no partial checkpoint behind and raises a clear error (save_guard.py).
For `setup(keep=N)` we also append a TrainerCallback to
`transformers.trainer.DEFAULT_CALLBACKS` whose on_save prunes the run that
was just saved (every Trainer built afterwards copies that list).

Standard library only: this module must never import transformers itself.
If a target module is already loaded we patch it at once, otherwise a
meta-path finder patches it right after it is first executed.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable  # not typing: importing typing costs setup() ~3 ms

TARGET_MODULE = 'transformers.training_args'
TRAINER_MODULE = 'transformers.trainer'   # only for setup(keep=N): a callback after each save
# Tested on 5.x; the mechanism (a dataclass with output_dir and __post_init__)
# is the same since 4.x.  A future major may move things: refuse it.
MIN_VERSION = (4, 46)  # as in pyproject's transformers extra
MAX_MAJOR = 5
_MARK = '_git_ckpt_original'

_rewrite: Callable[[str | None], str | None] | None = None
_on_save: Callable[[str, int], None] | None = None
_pending: set[str] = set()  # modules the import hook still waits for
_finder: '_Finder | None' = None
_warned: set[str] = set()


def parse_version(text: str) -> tuple[int, ...]:
    """Leading numeric components: '5.24.0.dev0' -> (5, 24, 0)."""
    import re  # only when transformers is imported (which has loaded re already)
    parts = []
    for piece in text.split('.'):
        m = re.match(r'\d+', piece)
        if not m:
            break
        parts.append(int(m.group()))
        if m.group() != piece:
            break
    return tuple(parts)


def version_problem(version: str) -> str | None:
    """Why this transformers version is not supported, or None."""
    v = parse_version(version)
    if not v or v[:2] < MIN_VERSION:
        return f'transformers {version} is older than {".".join(map(str, MIN_VERSION))}'
    if v[0] > MAX_MAJOR:
        return f'transformers {version} is a newer major version than git-ckpt knows ({MAX_MAJOR}.x)'
    return None


def is_main_process() -> bool:
    """Rank 0 of a torchrun/SLURM job, or a plain process: the one that talks."""
    for name in ('RANK', 'LOCAL_RANK', 'SLURM_PROCID'):
        value = os.environ.get(name)
        if value not in (None, '', '0'):
            return False
    return True


def warn(message: str) -> None:
    """One line on stderr, from rank 0 only; training goes on regardless."""
    if is_main_process():
        from git_ckpt.output import warn as print_warning
        print_warning(message)


def _patch_class(cls: type) -> None:
    original = cls.__dict__['__post_init__']
    if getattr(original, _MARK, None) is not None:
        return  # already patched (idempotent)

    def __post_init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        # After the original: it fills in the default output_dir ("trainer_output"
        # in 5.x) and expands "~", so we see the final value.
        if _rewrite is not None:
            self.output_dir = _rewrite(self.output_dir)

    setattr(__post_init__, _MARK, original)
    __post_init__.__qualname__ = original.__qualname__
    __post_init__.__doc__ = original.__doc__
    cls.__post_init__ = __post_init__


def _unsupported(module) -> str | None:
    import dataclasses  # here, not at the top: transformers has loaded it by now, setup() has not
    transformers = sys.modules.get('transformers')
    version = str(getattr(transformers, '__version__', 'unknown'))
    problem = version_problem(version)
    if problem is None and module.__name__ == TARGET_MODULE:
        cls = getattr(module, 'TrainingArguments', None)
        if (not isinstance(cls, type) or not dataclasses.is_dataclass(cls)
                or '__post_init__' not in cls.__dict__
                or 'output_dir' not in {f.name for f in dataclasses.fields(cls)}):
            problem = (f'transformers {version} has no TrainingArguments dataclass with output_dir '
                       'where git-ckpt expects it')
    if problem is None and module.__name__ == TRAINER_MODULE:
        if not isinstance(getattr(module, 'DEFAULT_CALLBACKS', None), list) or not isinstance(
                getattr(module, 'TrainerCallback', None), type):
            problem = f'transformers {version} has no DEFAULT_CALLBACKS list where git-ckpt expects it'
    return problem


def _warn_once(problem: str, consequence: str) -> None:
    if problem not in _warned:  # once per process, however often setup() runs
        _warned.add(problem)
        warn(f'{problem}; {consequence}')


def patch_module(module) -> bool:
    """Patch a loaded transformers.training_args; warn and return False if we cannot."""
    problem = _unsupported(module)
    if problem is not None:
        _warn_once(problem, 'output_dir is NOT redirected to scratch (checkpoints go where output_dir says). '
                   'Pass output_dir=str(git_ckpt.scratch_dir() / "out") yourself, or use transformers 5.x')
        return False
    _patch_class(module.TrainingArguments)
    return True


def patch_trainer(module) -> bool:
    """Guard every checkpoint save against a full disk (see save_guard), and
    with setup(keep=N) add a callback that runs `_on_save(output_dir, global_step)`
    after every checkpoint save."""
    trainer = getattr(module, 'Trainer', None)
    if isinstance(trainer, type) and callable(trainer.__dict__.get('_save_checkpoint')):
        from git_ckpt.save_guard import patch_save_checkpoint
        patch_save_checkpoint(trainer, _MARK)
    if _on_save is None:
        return True
    problem = _unsupported(module)
    if problem is not None:
        _warn_once(problem, 'setup(keep=N) cannot prune after saves; set save_total_limit=N instead')
        return False
    callbacks = module.DEFAULT_CALLBACKS  # copied into every Trainer's callback list at __init__
    if any(getattr(cb, _MARK, None) for cb in callbacks):
        return True

    class GitCkptKeep(module.TrainerCallback):
        """setup(keep=N): prune the run with the `git ckpt prune` policy after each save."""

        def on_save(self, args, state, control, **kwargs):
            if _on_save is not None and args.should_save:  # the process that writes checkpoints
                try:
                    # The step names the checkpoint just written: during a
                    # hyperparameter search it is in a run-<trial> subdir of output_dir.
                    _on_save(args.output_dir, state.global_step)
                except Exception as exc:  # pruning must never kill a training run
                    warn(f'setup(keep=N): pruning after step {state.global_step} failed '
                         f'({type(exc).__name__}: {exc}); training goes on')

    setattr(GitCkptKeep, _MARK, True)
    callbacks.append(GitCkptKeep)
    return True


_PATCHERS = {TARGET_MODULE: patch_module, TRAINER_MODULE: patch_trainer}


class _PatchingLoader:
    """Wraps the real loader; patches the module right after it executes.
    (Duck-typed, not an importlib.abc subclass: importing importlib.abc alone
    costs setup() ~7 ms.)"""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _pending.discard(module.__name__)
        if not _pending:
            uninstall_hook()
        try:
            _PATCHERS[module.__name__](module)
        except Exception as exc:  # never break the user's import of transformers
            warn(f'could not patch {module.__name__} ({type(exc).__name__}: {exc}); setup() has no effect on it')

    def __getattr__(self, name):
        # get_source, get_filename, is_package, ... for inspect and friends.
        if name == '_loader':  # not set yet (copy/unpickle): no recursion
            raise AttributeError(name)
        return getattr(self._loader, name)


class _Finder:  # a meta path finder needs only find_spec
    def find_spec(self, fullname, path, target=None):
        if fullname not in _pending:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, 'exec_module'):
            spec.loader = _PatchingLoader(spec.loader)
        return spec


def uninstall_hook() -> None:
    global _finder
    if _finder is not None:
        try:
            sys.meta_path.remove(_finder)
        except ValueError:
            pass
        _finder = None


def install(rewrite: Callable[[str | None], str | None],
            on_save: Callable[[str, int], None] | None = None) -> str:
    """Route every TrainingArguments.output_dir through `rewrite`, and call
    `on_save(output_dir, global_step)` after each checkpoint save when given.

    Returns 'patched', 'hooked' (patched when transformers gets imported) or
    'unsupported', for the output_dir part.  Never imports transformers.
    """
    global _rewrite, _on_save, _finder
    _rewrite, _on_save = rewrite, on_save
    state = 'hooked'
    for name in (TARGET_MODULE, TRAINER_MODULE):
        module = sys.modules.get(name)
        if module is None:
            _pending.add(name)
        else:
            ok = _PATCHERS[name](module)
            if name == TARGET_MODULE:
                state = 'patched' if ok else 'unsupported'
    if _pending and _finder is None:
        _finder = _Finder()
        sys.meta_path.insert(0, _finder)
    return state
