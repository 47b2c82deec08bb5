"""Where scratch lives (issue 2, section 2): --root > GIT_CKPT_ROOT > git config
ckpt.root (local, global, system) > autodetect > fallback with a warning.
Nothing here touches a real /scratch: autodetection is pointed at temp dirs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import assert_error, ckpt, git, scratch_path
from git_ckpt import constants as C
from git_ckpt.errors import GitCkptError
from git_ckpt.settings import (
    Settings, autodetect_candidates, load_settings, quiet, resolve_root, user_cache_dir, user_name,
    validate_name,
)

REAL_AUTODETECT = [p.format(user=user_name()) for p in C.AUTODETECT_ROOTS]


def roots(hermetic, *names: str) -> list[Path]:
    out = []
    for name in names:
        path = hermetic.tmp / name
        path.mkdir(mode=0o700)
        out.append(path)
    return out


def root_of(cwd: Path, *args: str, **kwargs) -> Path:
    """The root `git ckpt path` uses: the parent of the project dir."""
    return Path(ckpt('path', '--no-create', *args, cwd=cwd, **kwargs).stdout.strip()).parent.parent


# -- the order, through the real command ------------------------------------------

def test_resolution_order_first_hit_wins(repo, hermetic, monkeypatch):
    flag, env, local, global_, system, scratch = roots(
        hermetic, 'flag', 'env', 'local', 'global', 'system', 'scratch_env')
    system_config = hermetic.tmp / 'system-gitconfig'
    system_config.write_text(f'[ckpt]\n\troot = {system}\n')
    monkeypatch.delenv('GIT_CONFIG_NOSYSTEM')
    monkeypatch.setenv('GIT_CONFIG_SYSTEM', os.fspath(system_config))
    monkeypatch.setenv('SCRATCH', os.fspath(scratch))
    git('config', '--global', C.CONFIG_ROOT, global_, cwd=repo)
    git('config', '--local', C.CONFIG_ROOT, local, cwd=repo)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(env))

    assert root_of(repo, '--root', flag) == flag
    assert root_of(repo) == env
    monkeypatch.delenv('GIT_CKPT_ROOT')
    assert root_of(repo) == local
    git('config', '--local', '--unset', C.CONFIG_ROOT, cwd=repo)
    assert root_of(repo) == global_
    git('config', '--global', '--unset', C.CONFIG_ROOT, cwd=repo)
    assert root_of(repo) == system
    system_config.write_text('')
    assert root_of(repo) == scratch


def test_local_config_beats_global_even_when_global_is_read_later(repo, hermetic, monkeypatch):
    local, global_ = roots(hermetic, 'local', 'global')
    monkeypatch.delenv('GIT_CKPT_ROOT')
    git('config', '--local', C.CONFIG_ROOT, local, cwd=repo)
    git('config', '--global', C.CONFIG_ROOT, global_, cwd=repo)
    assert root_of(repo) == local
    settings = load_settings(repo)
    assert settings.get(C.CONFIG_ROOT) == (os.fspath(local), 'local')


def test_tilde_in_config_root_is_expanded(repo, hermetic, monkeypatch):
    monkeypatch.delenv('GIT_CKPT_ROOT')
    (hermetic.home / 'scr').mkdir(mode=0o700)
    git('config', '--global', C.CONFIG_ROOT, '~/scr', cwd=repo)
    assert root_of(repo) == hermetic.home / 'scr'


@pytest.mark.parametrize('source', ['env', 'config'])
def test_relative_root_setting_is_refused(repo, hermetic, monkeypatch, source):
    # Hooks and jobs run from other directories: a relative root would move.
    if source == 'env':
        monkeypatch.setenv('GIT_CKPT_ROOT', 'scratch')
    else:
        monkeypatch.delenv('GIT_CKPT_ROOT')
        git('config', '--local', C.CONFIG_ROOT, 'scratch', cwd=repo)
    assert_error(ckpt('path', cwd=repo, check=False), 'relative path', 'absolute')


def test_relative_root_flag_is_taken_from_the_current_dir(repo, hermetic):
    (repo / 'here').mkdir(mode=0o700)
    assert root_of(repo, '--root', 'here') == repo / 'here'


def test_scratch_env_is_autodetected(repo, hermetic, monkeypatch):
    scratch, = roots(hermetic, 'site-scratch')
    monkeypatch.delenv('GIT_CKPT_ROOT')
    monkeypatch.setenv('SCRATCH', os.fspath(scratch))
    proc = ckpt('path', cwd=repo)
    assert Path(proc.stdout.strip()).parent.parent == scratch
    assert proc.stderr == ''  # a real scratch root: no warning


def test_missing_scratch_env_is_skipped(repo, hermetic, monkeypatch):
    if any(os.path.isdir(p) for p in REAL_AUTODETECT):
        pytest.skip('this machine has a real cluster scratch dir')
    monkeypatch.delenv('GIT_CKPT_ROOT')
    monkeypatch.setenv('SCRATCH', os.fspath(hermetic.tmp / 'nope'))
    assert root_of(repo) == hermetic.home / '.cache' / C.FALLBACK_ROOT_NAME


# -- the fallback --------------------------------------------------------------------

@pytest.fixture
def no_cluster_scratch(hermetic, monkeypatch):
    if any(os.path.isdir(p) for p in REAL_AUTODETECT):
        pytest.skip('this machine has a real cluster scratch dir')
    monkeypatch.delenv('GIT_CKPT_ROOT')


def test_fallback_is_under_the_cache_dir_with_a_warning(repo, hermetic, no_cluster_scratch):
    proc = ckpt('path', cwd=repo)
    fallback = hermetic.home / '.cache' / C.FALLBACK_ROOT_NAME
    # stdout is the path alone, so "$(git ckpt path)" stays usable.
    assert proc.stdout.count('\n') == 1
    d = Path(proc.stdout.strip())
    assert d.is_dir() and d.parent.parent == fallback
    assert oct(fallback.stat().st_mode & 0o777) == oct(0o700)
    warning, = proc.stderr.splitlines()
    assert warning.startswith('git-ckpt: warning: ')
    assert 'home filesystem' in warning and f'git config --global {C.CONFIG_ROOT}' in warning


def test_fallback_honours_xdg_cache_home(repo, hermetic, no_cluster_scratch, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', os.fspath(hermetic.tmp / 'xdg'))
    assert root_of(repo) == hermetic.tmp / 'xdg' / C.FALLBACK_ROOT_NAME


def test_fallback_warning_is_silenced_by_quiet(repo, hermetic, no_cluster_scratch, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_QUIET', '1')
    proc = ckpt('path', cwd=repo)
    assert proc.stderr == ''
    assert Path(proc.stdout.strip()).is_dir()


def test_no_create_does_not_create_the_fallback_root(repo, hermetic, no_cluster_scratch):
    fallback = hermetic.home / '.cache' / C.FALLBACK_ROOT_NAME
    planned = scratch_path(repo)
    assert planned.parent.parent == fallback
    assert not fallback.exists()
    # ... and the path printed before is the one created later.
    assert Path(ckpt('path', cwd=repo).stdout.strip()) == planned


def test_init_reports_the_fallback(repo, hermetic, no_cluster_scratch):
    proc = ckpt('init', cwd=repo)
    assert 'fallback' in proc.stdout
    assert 'home filesystem' in proc.stderr


# -- resolve_root in-process (autodetect order without touching /scratch) -------------------

def test_autodetect_tries_scratch_then_site_dirs_in_order(hermetic, monkeypatch):
    lustre, gpfs = roots(hermetic, 'lustre', 'gpfs')
    patterns = (os.fspath(hermetic.tmp / 'scratch-missing' / '{user}'),
                os.fspath(lustre), os.fspath(gpfs))
    monkeypatch.setattr(C, 'AUTODETECT_ROOTS', patterns)
    environ = {'SCRATCH': os.fspath(hermetic.tmp / 'not-there')}
    labels = [label for _, label in autodetect_candidates(environ)]
    assert labels[0] == '$SCRATCH' and len(labels) == 4
    choice = resolve_root(None, Settings(()), environ)
    assert choice.path == lustre and choice.warning is None
    assert choice.source.startswith('autodetected')


def test_autodetect_skips_dirs_we_cannot_write(as_unprivileged):
    root_owned = as_unprivileged.sandbox / 'site-scratch'   # 0755, not theirs: not writable
    root_owned.mkdir()
    theirs = as_unprivileged.sandbox / 'their-scratch'
    theirs.mkdir()
    as_unprivileged.own(theirs)
    patterns = (os.fspath(root_owned), os.fspath(theirs))
    script = ('from git_ckpt import constants as C; '
              f'C.AUTODETECT_ROOTS = {patterns!r}; '
              'from git_ckpt.settings import resolve_root, Settings; '
              'print(resolve_root(None, Settings(()), {}).path)')
    proc = as_unprivileged.run('-c', script, check=True)
    assert Path(proc.stdout.strip()) == theirs


def test_resolve_root_precedence_in_process(hermetic):
    settings = Settings((('global', 'ckpt.root', '/g'), ('local', 'ckpt.root', '/l')))
    assert resolve_root('/flag', settings, {'GIT_CKPT_ROOT': '/env'}).path == Path('/flag')
    assert resolve_root(None, settings, {'GIT_CKPT_ROOT': '/env'}).path == Path('/env')
    choice = resolve_root(None, settings, {})
    assert choice.path == Path('/l') and '(local)' in choice.source


def test_user_cache_dir(hermetic, monkeypatch):
    assert user_cache_dir() == hermetic.home / '.cache' / C.FALLBACK_ROOT_NAME
    monkeypatch.setenv('XDG_CACHE_HOME', '/x')
    assert user_cache_dir() == Path('/x') / C.FALLBACK_ROOT_NAME


# -- Settings, names, quiet --------------------------------------------------------------------

def test_settings_most_specific_scope_wins_and_get_all_keeps_order():
    s = Settings((('system', 'ckpt.allow', 'a'), ('global', 'ckpt.name', 'g'),
                  ('local', 'ckpt.name', 'l'), ('local', 'ckpt.allow', 'b')))
    assert s.get('ckpt.name') == ('l', 'local')
    assert s.get('CKPT.Name') == ('l', 'local')
    assert s.get('ckpt.root') is None
    assert s.get_all('ckpt.allow') == ['a', 'b']


def test_load_settings_reads_real_config_with_odd_values(repo, hermetic):
    git('config', '--local', 'ckpt.name', 'with space', cwd=repo)
    git('config', '--local', '--add', 'ckpt.allow', 'a\tb', cwd=repo)
    git('config', '--local', '--add', 'ckpt.allow', 'ünï', cwd=repo)
    git('config', '--global', 'ckpt.maxFileSize', '10M', cwd=repo)
    s = load_settings(repo)
    assert s.get('ckpt.name') == ('with space', 'local')
    assert s.get_all('ckpt.allow') == ['a\tb', 'ünï']
    assert s.get('ckpt.maxfilesize') == ('10M', 'global')


@pytest.mark.parametrize('name', ['exp', 'llama-3 sweep', 'résumé', 'a.b', 'x' * C.MAX_NAME_LEN])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize('name', ['', '.', '..', 'a/b', '../x', '.hidden', 'a\nb', 'a\0b',
                                  'x' * (C.MAX_NAME_LEN + 1)])
def test_invalid_names(name):
    with pytest.raises(GitCkptError) as info:
        validate_name(name)
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('value,expected', [('', False), ('0', False), ('false', False),
                                            ('no', False), ('1', True), ('yes', True)])
def test_quiet(value, expected):
    assert quiet({'GIT_CKPT_QUIET': value}) is expected


def test_user_name_answers_like_getpass_without_importing_it(monkeypatch):
    import getpass
    import subprocess
    import sys
    for env in ({'LOGNAME': 'a', 'USER': 'b'}, {'USER': 'b'}, {'USERNAME': 'c'}, {}):
        for name in ('LOGNAME', 'USER', 'LNAME', 'USERNAME'):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert user_name() == getpass.getuser()
    code = ('import sys; from git_ckpt.settings import user_name; user_name(); '
            'print(sorted(m for m in ("getpass", "pathlib", "typing") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-S', '-c', code], capture_output=True, text=True,
                         env={**os.environ, 'PYTHONPATH': os.path.dirname(os.path.dirname(C.__file__))})
    assert out.stdout.strip() == '[]', out.stderr
