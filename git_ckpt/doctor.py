"""`git ckpt doctor`: every way a setup goes wrong, checked, each with its fix.

Each check returns Check records; `run_checks` collects them.  A check never
raises: an unexpected problem becomes a failed check, so one broken thing
cannot hide the others.  Nothing here changes anything on disk, except the
id files `locate()` creates the first time a worktree is looked at.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from git_ckpt import constants as C
from git_ckpt import git, hooks, identity, ignore, links, scratch, worktree
from git_ckpt.errors import GitCkptError
from git_ckpt.output import human_size
from git_ckpt.settings import Settings, load_settings, resolve_root

OK, WARN, FAIL, SKIP = 'ok', 'warn', 'fail', 'skip'


class Check(NamedTuple):
    id: str            # stable: scripts may key on it
    status: str        # ok / warn / fail / skip
    message: str
    fix: str = ''
    subject: str = ''  # what a repeated check is about (a hook name, a link path)
    data: dict = {}

    def as_json(self) -> dict:
        return {'id': self.id, 'subject': self.subject, 'status': self.status,
                'message': self.message, 'fix': self.fix, 'data': dict(self.data)}


def _dir_size(path: Path) -> int:
    from git_ckpt.disk_usage import dir_size
    return dir_size(path)


def check_root(settings: Settings) -> tuple[list[Check], Path | None]:
    """Where the root comes from, and whether it is usable; returns its real path."""
    choice = resolve_root(None, settings)
    out = [Check('root.resolved', WARN if choice.warning else OK,
                 f'scratch root {choice.path} (from {choice.source})',
                 f'set a root off the home filesystem: git config --global {C.CONFIG_ROOT} /scratch/$USER'
                 if choice.warning else '', data={'path': os.fspath(choice.path), 'source': choice.source})]
    if choice.warning and not os.path.lexists(choice.path):
        out.append(Check('root.usable', WARN, f'fallback root {choice.path} does not exist yet '
                         '(created on first use)', f'git config --global {C.CONFIG_ROOT} DIR'))
        return out, None
    try:
        real = scratch.check_root(choice.path)
    except GitCkptError as exc:
        out.append(Check('root.usable', FAIL, exc.problem, exc.fix))
        return out, None
    out.append(Check('root.usable', OK,
                     f'root {real} exists, is yours (or a shared sticky dir) and writable'))
    return out, real


def check_modes(root: Path) -> Check:
    """Every project and worktree dir under the root: a real dir, ours, 0700."""
    me = os.geteuid()
    root_is_mine = os.stat(root).st_uid == me
    bad = []
    count = 0
    for project_dir in scratch.iter_project_dirs(root):
        dirs = [project_dir] + [d for d, _ in scratch.iter_managed_dirs(project_dir)]
        for path in dirs:
            st = os.lstat(path)
            if st.st_uid != me:
                if root_is_mine:
                    bad.append(f'{path} (owned by uid {st.st_uid})')
                continue
            count += 1
            if stat.S_IMODE(st.st_mode) & 0o077:
                bad.append(f'{path} ({stat.S_IMODE(st.st_mode):o})')
    if bad:
        return Check('root.modes', FAIL,
                     f'{len(bad)} dir(s) under the root are not private: {", ".join(bad)}',
                     'chmod 700 each of them (and remove dirs you do not own)', data={'bad': bad})
    return Check('root.modes', OK, f'{count} dir(s) under the root are private (0700, yours)',
                 data={'count': count})


def check_filesystem(root: Path, home: Path) -> Check:
    try:
        same = os.stat(root).st_dev == os.stat(home).st_dev
    except OSError as exc:
        return Check('root.filesystem', WARN, f'cannot compare filesystems: {exc.strerror}',
                     'check that $HOME exists')
    if same:
        return Check('root.filesystem', WARN,
                     f'scratch root {root} is on the same filesystem as $HOME ({home}): '
                     'checkpoints still count against the home quota',
                     f'use cluster scratch: git config --global {C.CONFIG_ROOT} /scratch/$USER')
    return Check('root.filesystem', OK, 'scratch root is on a different filesystem from $HOME')


def check_space(label: str, path: Path) -> Check:
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return Check('space', FAIL, f'cannot stat {label} {path}: {exc.strerror}', 'check the path',
                     subject=label)
    free = st.f_bavail * st.f_frsize
    data = {'path': os.fspath(path), 'free': free, 'total': st.f_blocks * st.f_frsize}
    message = f'{human_size(free)} free on {label} ({path})'
    fix = 'free space (git ckpt prune, archive) or move data off it (git ckpt migrate)'
    if free < C.DOCTOR_FAIL_FREE_BYTES:
        return Check('space', FAIL, message, fix, subject=label, data=data)
    if free < C.DOCTOR_WARN_FREE_BYTES:
        return Check('space', WARN, message, fix, subject=label, data=data)
    return Check('space', OK, message, subject=label, data=data)


def _probe(cmd: list[str]) -> tuple[bool, str]:
    """Run `cmd --version` the way the hook would; (worked, version or error)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                              env=git.clean_env(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    out = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode != 0:
        return False, out[-1] if out else f'exit {proc.returncode}'
    return True, out[-1].split()[-1] if out else ''


def check_hook(wt: worktree.Worktree, name: str) -> list[Check]:
    directory = hooks.hooks_dir(wt)
    path = directory / name
    if not (path.exists() or path.is_symlink()):
        return [Check('hook.installed', FAIL, f'{name} hook is not installed in {directory}',
                      'git ckpt init', subject=name)]
    if not hooks.is_ours(path):
        return [Check('hook.installed', FAIL, f'{path} is not git-ckpt\'s hook',
                      'git ckpt init (keeps the existing hook and runs it first)', subject=name)]
    out = [Check('hook.installed', OK, f'{name} hook installed ({path})', subject=name)]
    if not hooks.hook_is_executable(path):
        out.append(Check('hook.executable', FAIL, f'{path} is not executable (git skips it silently)',
                         f'chmod +x {path}', subject=name))
        return out
    out.append(Check('hook.executable', OK, f'{name} hook is executable', subject=name))
    python = hooks.hook_python(path)
    reinstall = f'git ckpt init (reinstalls the hook with {sys.executable})'
    # What the shim does: the recorded interpreter first; when it is gone or
    # cannot import git_ckpt, `git-ckpt` on PATH.
    if python and os.access(python, os.X_OK):
        worked, detail = _probe(hooks.hook_probe(path, python))
        if worked and detail != C.VERSION:
            return out + [Check('hook.python', WARN, f'the {name} hook runs git-ckpt {detail} ({python}), '
                                f'this is {C.VERSION}', reinstall, subject=name)]
        if worked:
            return out + [Check('hook.python', OK, f'the {name} hook reaches git-ckpt {detail} ({python})',
                                subject=name)]
        why = f'its Python {python} cannot run git-ckpt ({detail})'
    else:
        why = f'its Python {python or "(none recorded)"} is gone'
    on_path = shutil.which('git-ckpt')
    worked, detail = _probe([on_path, '--version']) if on_path else (False, 'not on PATH')
    if worked:
        return out + [Check('hook.python', WARN, f'the {name} hook falls back to {on_path} ({detail}): {why}',
                            reinstall, subject=name)]
    return out + [Check('hook.python', FAIL, f'the {name} hook cannot reach git-ckpt: {why}, and git-ckpt '
                        f'is {detail}', reinstall, subject=name)]


def check_ignore(wt: worktree.Worktree) -> Check:
    if ignore.has_block(wt.top):
        return Check('ignore.block', OK, f'git-ckpt block present in {wt.top / ".gitignore"}')
    return Check('ignore.block', FAIL, f'no git-ckpt block in {wt.top / ".gitignore"} '
                 '(checkpoint dirs could be committed)', 'git ckpt init')


def check_distinct(wt: worktree.Worktree, project_dir: Path) -> list[Check]:
    """Every worktree has its own scratch dir: no id file shared by copying."""
    owners: dict[str, list[Path]] = {}
    missing = []
    for entry in git.worktree_list(wt.top):
        if entry.bare or entry.prunable or not entry.path.is_dir():
            continue
        other = worktree.current_worktree(entry.path)
        leaf = identity.read_worktree_leaf(other.git_dir)
        if leaf is None or not (project_dir / leaf).is_dir():
            missing.append(entry.path)
        if leaf is not None:
            owners.setdefault(leaf, []).append(entry.path)
    out = []
    for leaf, paths in owners.items():
        if len(paths) > 1:
            out.append(Check(
                'worktrees.distinct', FAIL,
                f'worktrees {", ".join(map(str, paths))} share the scratch dir {project_dir / leaf}',
                f'in each but the original: rm "$(git rev-parse --git-dir)/{C.WORKTREE_ID_FILE}" '
                '&& git ckpt path (gives it a new dir)', subject=leaf))
    if not out:
        out.append(Check('worktrees.distinct', OK,
                         f'{len(owners)} worktree(s), each with its own scratch dir',
                         data={'count': len(owners)}))
    if missing:
        out.append(Check('worktrees.created', WARN, f'no scratch dir yet for {", ".join(map(str, missing))}',
                         'git ckpt init (creates one for every worktree)'))
    return out


def check_orphans(root: Path) -> Check:
    """Scratch dirs whose worktree is gone, in every project under the root."""
    orphans = []
    for project_dir in scratch.iter_project_dirs(root):
        if os.lstat(project_dir).st_uid != os.geteuid():
            continue  # another user's project in a shared root: not ours to judge
        manifest = scratch.read_json(project_dir / C.REPO_MANIFEST_NAME) or {}
        common_dir = Path(manifest.get('repo', project_dir / 'missing'))
        orphans += [e.scratch_dir for e in worktree.scratch_entries(project_dir, common_dir) if e.is_orphan]
    size = sum(_dir_size(p) for p in orphans)
    data = {'count': len(orphans), 'bytes': size, 'paths': [os.fspath(p) for p in orphans]}
    if orphans:
        return Check('orphans', WARN, f'{len(orphans)} orphaned scratch dir(s) of removed worktrees, '
                     f'{human_size(size)}', 'git ckpt gc (archives or deletes them; see git ckpt status)',
                     data=data)
    return Check('orphans', OK, 'no orphaned scratch dirs', data=data)


def transformers_problem(version: str) -> str | None:
    """Why setup() refuses this transformers version, or None.  The hf module
    is the authority when present; the range in constants otherwise."""
    try:
        from git_ckpt.hf_patch import version_problem
    except ImportError:
        low, high = C.TRANSFORMERS_SUPPORTED
        parsed = _version_tuple(version)
        if not parsed or parsed < _version_tuple(low) or parsed >= _version_tuple(high):
            return f'transformers {version} is outside the supported range >={low},<{high}'
        return None
    return version_problem(version)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split('.'):
        digits = ''.join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ''
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_transformers() -> Check:
    from importlib import metadata
    try:
        version = metadata.version('transformers')
    except metadata.PackageNotFoundError:
        return Check('transformers', WARN, f'transformers is not installed in {sys.executable} '
                     '(only git_ckpt.setup() needs it)', "pip install 'git-ckpt[transformers]'")
    problem = transformers_problem(version)
    low, high = C.TRANSFORMERS_SUPPORTED
    if problem:
        return Check('transformers', FAIL, f'{problem}: git_ckpt.setup() will refuse it',
                     f"pip install 'transformers>={low},<{high}'", data={'version': version})
    return Check('transformers', OK, f'transformers {version} is supported by setup()',
                 data={'version': version})


def check_hf_cache(home: Path) -> Check:
    hf_home = os.environ.get('HF_HOME')
    path = Path(hf_home) if hf_home else home / '.cache' / 'huggingface'
    label = f'HF_HOME={path}' if hf_home else os.fspath(path)
    if not path.exists():
        return Check('hf.cache', OK, f'no Hugging Face cache at {label}', data={'path': os.fspath(path)})
    size = _dir_size(path.resolve())
    data = {'path': os.fspath(path), 'bytes': size}
    on_home = os.stat(path).st_dev == os.stat(home).st_dev
    if on_home and size >= C.DOCTOR_HF_CACHE_WARN_BYTES:
        return Check('hf.cache', WARN,
                     f'Hugging Face cache {label} holds {human_size(size)} on the home filesystem',
                     'git ckpt migrate --hf-cache', data=data)
    where = 'home filesystem' if on_home else 'a filesystem other than home'
    return Check('hf.cache', OK, f'Hugging Face cache {label}: {human_size(size)} on {where}', data=data)


def check_links(location: worktree.Location, settings: Settings) -> list[Check]:
    top = location.worktree.top
    block = (top / '.gitignore').read_text(encoding='utf-8', errors='replace').splitlines() \
        if (top / '.gitignore').is_file() else []
    out = []
    for value in links.configured(settings):
        try:
            rel = links.check_relative(value)
            state = links.state(top, location.scratch_dir, rel)
        except GitCkptError as exc:
            out.append(Check('link', FAIL, f'ckpt.link {value!r}: {exc.problem}',
                             f'git config --unset-all {C.CONFIG_LINK} (then link again)', subject=value))
            continue
        target = location.scratch_dir / rel
        if state == links.LINKED and not target.is_dir():
            out.append(Check('link', FAIL, f'{rel} -> {target}, which is missing', f'git ckpt link {rel}',
                             subject=rel))
        elif state == links.LINKED:
            if links.ignore_pattern(rel) in block:
                out.append(Check('link', OK, f'{rel} -> {target}', subject=rel))
            else:
                out.append(Check('link', WARN, f'{rel} is linked but not in the .gitignore block',
                                 'git ckpt init', subject=rel))
        elif state in (links.MISSING, links.EMPTY_DIR):
            # The hook links new worktrees only: one that existed before the
            # link was configured lacks it, and nothing is written to home yet.
            what = 'is not linked in this worktree yet' if state == links.MISSING else \
                'is a plain empty dir here, not a link'
            out.append(Check('link', WARN, f'{rel} {what}', f'git ckpt link {rel}', subject=rel))
        else:
            problem, fix = {
                links.STALE: ('points into an old scratch root', f'git ckpt link {rel}'),
                links.DATA_DIR: ('is a real directory with data', f'git ckpt migrate {rel}'),
                links.FILE: ('is a file', f'move it away, then git ckpt link {rel}'),
                links.FOREIGN: ('is a symlink somewhere else',
                                f'rm {rel} (the symlink), then git ckpt link {rel}'),
            }[state]
            out.append(Check('link', FAIL, f'link {rel} {problem}', fix, subject=rel))
    return out


def _guarded(name: str, func, *args) -> list[Check]:
    """Run one check; whatever goes wrong becomes a failed check."""
    try:
        result = func(*args)
    except GitCkptError as exc:
        return [Check(name, FAIL, exc.problem, exc.fix)]
    except OSError as exc:
        return [Check(name, FAIL, f'{exc.strerror or exc}: {exc.filename or ""}',
                      'check the path and its permissions')]
    except Exception as exc:  # a bug in one check must not hide the others
        return [Check(name, FAIL, f'the check itself failed: {exc!r}', 'report this as a git-ckpt bug')]
    return list(result) if isinstance(result, list) else [result]


def run_checks(cwd: Path | None = None, home: Path | None = None) -> list[Check]:
    home = Path(os.path.expanduser('~')) if home is None else home
    try:
        wt = worktree.current_worktree(cwd)
    except GitCkptError as exc:
        wt, not_here = None, exc.problem  # e.g. "... is a bare repository (no worktree ...)"
    settings = load_settings(wt.top if wt else cwd)
    checks, root = check_root(settings)
    location = None
    if root is not None:
        checks += _guarded('root.modes', check_modes, root)
        checks += _guarded('root.filesystem', check_filesystem, root, home)
        checks += _guarded('space', check_space, 'root', root)
    checks += _guarded('space', check_space, 'home', home)
    if wt is None:
        checks.append(Check('repository', SKIP, f'{not_here}: repository checks skipped',
                            'run git ckpt doctor inside a worktree'))
    else:
        for name in C.HOOK_NAMES:
            if hooks.uses_pre_commit_framework(wt):
                checks.append(Check('hook.installed', SKIP, f'{C.PRE_COMMIT_CONFIG} manages the hooks',
                                    'see git ckpt init for the snippet', subject=name))
            else:
                checks += _guarded('hook.installed', check_hook, wt, name)
        checks += _guarded('ignore.block', check_ignore, wt)
        if root is not None:
            try:
                location = worktree.locate(wt, settings=settings)
            except GitCkptError as exc:  # e.g. a scratch path someone else pre-created: a finding
                checks.append(Check('scratch.path', FAIL, exc.problem, exc.fix))
            else:
                checks += _guarded('worktrees.distinct', check_distinct, wt, location.project_dir)
                checks += _guarded('link', check_links, location, settings)
    if root is not None:
        checks += _guarded('orphans', check_orphans, root)
    checks += _guarded('transformers', check_transformers)
    checks += _guarded('hf.cache', check_hf_cache, home)
    return checks


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0
