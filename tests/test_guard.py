"""The commit guard, through real commits: the native hook `git ckpt init`
installs, and the real pre-commit framework (tests at the end of the file)."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from git_ckpt import constants as C
from conftest import BIN_DIR, ckpt, git, make_repo, run, scratch_path

PROJECT = Path(__file__).resolve().parents[1]
LFS_POINTER = (
    'version https://git-lfs.github.com/spec/v1\n'
    'oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n'
    'size 1340000000\n'
)


def write(path: Path, data: bytes | str = b'x\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def head(repo: Path) -> str | None:
    proc = git('rev-parse', '--verify', '-q', 'HEAD', cwd=repo, check=False)
    return proc.stdout.strip() or None


def commit(repo: Path, *extra: str, message: str = 'test') -> subprocess.CompletedProcess:
    return git('commit', '-q', '-m', message, *extra, cwd=repo, check=False)


def assert_blocked(proc, repo: Path, before: str | None, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert 'git-ckpt: commit blocked' in proc.stderr, proc.stderr
    assert 'git commit --no-verify' in proc.stderr
    assert head(repo) == before, 'a blocked commit must not create a commit'
    for needle in needles:
        assert needle in proc.stderr, f'{needle!r} not in\n{proc.stderr}'
    return proc.stderr


def assert_committed(proc, repo: Path, before: str | None) -> None:
    assert proc.returncode == 0, proc.stderr
    assert head(repo) != before


def stage(repo: Path, rel: str, data: bytes | str = b'x\n') -> None:
    write(repo / rel, data)
    git('add', '-f', '--', rel, cwd=repo)


def fix_commands(message: str) -> str:
    """The `git rm` and `echo` lines of a message, as one shell script."""
    block = message.split('Keep them out of the commit')[1].split('\n', 1)[1]
    block = block.split('\n\nOr, if they belong')[0]
    # Drop the notes after the commands.
    return re.split(r'\n  \((?:\.gitignore already|if git rm refuses)', block)[0]


# --- native hook: what is blocked -------------------------------------------------

@pytest.mark.parametrize('rel, needle', [
    ('out/checkpoint-500/trainer_state.json', 'checkpoint-<n>'),
    ('runs/exp/tmp-checkpoint-12/config.json', 'tmp-checkpoint-*'),
    ('ds/global_step1200/mp_rank_00_model_states.pt', 'global_step<n>'),
    ('.art/run1/meta.json', '.art'),
    ('unsloth_compiled_cache/UnslothSFTTrainer.py', 'unsloth_compiled_cache'),
    ('model/model.safetensors', '*.safetensors'),
    ('model/pytorch_model-00001-of-00002.bin', 'pytorch_model*.bin'),
    ('lora/adapter_model.bin', 'adapter_model.*'),
    ('state/optimizer.pt', 'optimizer.pt'),
    ('state/scheduler.pt', 'scheduler.pt'),
    ('state/scaler.pt', 'scaler.pt'),
    ('state/rng_state_3.pth', 'rng_state*.pth'),
    ('training_args.bin', 'training_args.bin'),
    ('lightning/last.ckpt', '*.ckpt'),
    ('llm/model-Q4_K_M.gguf', '*.gguf'),
])
def test_blocked_by_name(inited_repo, rel, needle):
    before = head(inited_repo)
    stage(inited_repo, rel)
    assert_blocked(commit(inited_repo), inited_repo, before, needle)


@pytest.mark.parametrize('rel', [
    'src/checkpoint.py', 'src/checkpoint_utils.py', 'docs/checkpoint-notes.md',
    'docs/global_step.md', 'notes/model.safetensors.md', 'src/optimizer.py', 'art/x.json',
    'checkpoints.md', 'src/checkpoint-x/readme.md',
])
def test_allowed_names(inited_repo, rel):
    before = head(inited_repo)
    stage(inited_repo, rel)
    assert_committed(commit(inited_repo), inited_repo, before)


def test_an_in_progress_checkpoint_dir_is_one_line_too(inited_repo):
    """tmp-checkpoint-* ends at its own dir: its files are one group, not a
    line each (the pattern once ran on to the end of the path)."""
    repo = inited_repo
    for name in ('config.json', 'model.safetensors', 'sub/optimizer.pt'):
        stage(repo, f'runs/exp/tmp-checkpoint-12/{name}')
    before = head(repo)
    message = assert_blocked(commit(repo), repo, before, 'runs/exp/tmp-checkpoint-12/ (3 files')
    assert 'git rm -r --cached -- runs/exp/tmp-checkpoint-12/' in message
    assert 'tmp-checkpoint-*/' in message


def test_checkpoint_dir_is_one_line_and_fix_commands_work(inited_repo):
    repo = inited_repo
    names = ['config.json', 'model.safetensors', 'optimizer.pt', 'scheduler.pt', 'rng_state.pth',
             'trainer_state.json', 'training_args.bin', 'generation_config.json', 'scaler.pt',
             'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']
    for name in names:
        stage(repo, f'out/checkpoint-500/{name}')
    stage(repo, 'src/train.py', 'print(1)\n')
    before = head(repo)
    message = assert_blocked(commit(repo), repo, before, 'out/checkpoint-500/ (12 files')
    assert message.count('checkpoint-500') == 3   # the group line, git rm, allow; nothing per file
    assert "git rm -r --cached -- out/checkpoint-500/" in message
    # init's ignore block has the line already: said, not suggested again.
    assert "echo 'checkpoint-*/'" not in message
    assert '(.gitignore already has checkpoint-*/: those files were added with git add -f)' in message
    assert "git config --add ckpt.allow 'out/checkpoint-500/*'" in message
    run(['sh', '-c', fix_commands(message)], cwd=repo)
    assert_committed(commit(repo), repo, before)
    tree = git('ls-tree', '-r', '--name-only', 'HEAD', cwd=repo).stdout.split('\n')
    assert 'src/train.py' in tree and not any('checkpoint-500' in p for p in tree)
    assert (repo / 'out/checkpoint-500/optimizer.pt').is_file()   # still on disk


def test_size_limit_default_and_config(inited_repo):
    repo = inited_repo
    before = head(repo)
    stage(repo, 'data/big.bin', os.urandom(10 * 1024 * 1024 + 1))
    assert_blocked(commit(repo), repo, before, 'data/big.bin (10.0M)', 'over the 10.0M limit')
    git('config', 'ckpt.maxFileSize', '20M', cwd=repo)
    assert_committed(commit(repo), repo, before)
    before = head(repo)
    git('config', 'ckpt.maxFileSize', '500k', cwd=repo)
    stage(repo, 'data/mid.txt', b'a' * 600_000)
    assert_blocked(commit(repo), repo, before, 'over the 500.0K limit')
    git('config', 'ckpt.maxFileSize', '700000', cwd=repo)
    assert_committed(commit(repo), repo, before)


def test_size_of_packed_and_highly_compressible_blobs(inited_repo):
    """Sizes come from loose object headers, a stat-based deflate bound, or
    cat-file for packed objects: each path must give the exact staged size."""
    repo = inited_repo
    before = head(repo)
    # 12 MB of zeros: a ~12 KB loose object, above the bound's proof, so measured exactly.
    stage(repo, 'data/zeros.bin', bytes(12 * 1024 * 1024))
    assert_blocked(commit(repo), repo, before, 'data/zeros.bin (12.0M)')
    # The same staged blob after `git gc` packs it: the cat-file fallback.
    git('gc', '-q', cwd=repo)
    assert not list((repo / '.git' / 'objects').glob('??/*')), 'gc should have packed everything'
    assert_blocked(commit(repo), repo, before, 'data/zeros.bin (12.0M)')
    git('rm', '-q', '--cached', 'data/zeros.bin', cwd=repo)
    stage(repo, 'data/small.bin', bytes(1024 * 1024))  # 1 MB: cleared by the bound, allowed
    assert_committed(commit(repo), repo, before)


def test_bad_size_config_is_one_clear_line(inited_repo):
    before = head(inited_repo)
    git('config', 'ckpt.maxFileSize', 'ten megs', cwd=inited_repo)
    stage(inited_repo, 'a.txt')
    proc = commit(inited_repo)
    assert proc.returncode != 0 and head(inited_repo) == before
    assert "git-ckpt: error: ckpt.maxFileSize='ten megs' is not a size; " in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_deleting_a_long_committed_checkpoint_is_allowed(inited_repo):
    repo = inited_repo
    for name in ('model.safetensors', 'optimizer.pt'):
        stage(repo, f'out/checkpoint-100/{name}')
    git('commit', '-q', '--no-verify', '-m', 'oops', cwd=repo)
    for i in range(3):
        before = head(repo)
        stage(repo, f'src/f{i}.py', f'{i}\n')
        assert_committed(commit(repo), repo, before)
    before = head(repo)
    git('rm', '-r', '-q', 'out', cwd=repo)
    assert_committed(commit(repo), repo, before)
    assert git('ls-tree', '-r', '--name-only', 'HEAD', cwd=repo).stdout.count('checkpoint-100') == 0


def test_renames(inited_repo):
    repo = inited_repo
    stage(repo, 'out/checkpoint-7/notes.txt', 'n\n')
    stage(repo, 'notes.txt', 'keep me\n')
    git('commit', '-q', '--no-verify', '-m', 'old', cwd=repo)
    before = head(repo)
    # Out of a checkpoint dir: fine.
    git('mv', 'out/checkpoint-7/notes.txt', 'results.txt', cwd=repo)
    assert_committed(commit(repo), repo, before)
    before = head(repo)
    # Into one: blocked, though git sees a rename.
    (repo / 'runs/checkpoint-9').mkdir(parents=True)
    git('mv', 'notes.txt', 'runs/checkpoint-9/notes.txt', cwd=repo)
    assert_blocked(commit(repo), repo, before, 'runs/checkpoint-9/')


def test_lfs_pointer_passes_real_weights_do_not(inited_repo):
    repo = inited_repo
    write(repo / '.gitattributes', '*.safetensors filter=lfs diff=lfs merge=lfs -text\n')
    stage(repo, 'models/base/model.safetensors', LFS_POINTER)
    git('add', '.gitattributes', cwd=repo)
    before = head(repo)
    assert_committed(commit(repo), repo, before)
    before = head(repo)
    stage(repo, 'models/small/model.safetensors', b'\x08\x00\x00\x00\x00\x00\x00\x00{}      ')
    assert_blocked(commit(repo), repo, before, 'models/small/model.safetensors')


def test_partial_staging_checks_the_staged_blob(inited_repo):
    repo = inited_repo
    # Small blob staged, big file in the working tree: passes.
    stage(repo, 'data/table.csv', 'a,b\n')
    write(repo / 'data/table.csv', os.urandom(12 * 1024 * 1024))
    before = head(repo)
    assert_committed(commit(repo), repo, before)
    assert git('cat-file', '-s', 'HEAD:data/table.csv', cwd=repo).stdout.strip() == '4'
    # Big blob staged, small file in the working tree: blocked.
    stage(repo, 'data/other.csv', os.urandom(12 * 1024 * 1024))
    write(repo / 'data/other.csv', 'a,b\n')
    before = head(repo)
    assert_blocked(commit(repo), repo, before, 'data/other.csv (12.0M)')


def test_commit_a_uses_the_temporary_index(inited_repo):
    repo = inited_repo
    stage(repo, 'data/table.csv', 'a,b\n')
    git('commit', '-q', '-m', 'table', cwd=repo)
    write(repo / 'data/table.csv', os.urandom(11 * 1024 * 1024))
    before = head(repo)
    assert_blocked(git('commit', '-q', '-a', '-m', 'x', cwd=repo, check=False), repo, before, 'data/table.csv')


def test_symlink_into_scratch_is_blocked(inited_repo, hermetic):
    repo = inited_repo
    scratch = scratch_path(repo)
    before = head(repo)
    os.symlink(scratch / 'run1', repo / 'outputs')
    git('add', 'outputs', cwd=repo)
    assert_blocked(commit(repo), repo, before, 'outputs', 'symlink into the scratch root')
    git('rm', '-q', '--cached', 'outputs', cwd=repo)
    # Relative, through '..': still resolves into the root.
    rel = os.path.relpath(scratch, repo / 'sub')
    os.makedirs(repo / 'sub')
    os.symlink(rel, repo / 'sub/ckpts')
    git('add', 'sub/ckpts', cwd=repo)
    assert_blocked(commit(repo), repo, before, 'sub/ckpts')
    git('rm', '-q', '--cached', 'sub/ckpts', cwd=repo)
    # A link elsewhere is fine.
    os.symlink('/usr/share', repo / 'share')
    git('add', 'share', cwd=repo)
    assert_committed(commit(repo), repo, before)


def test_symlink_via_a_root_that_is_itself_a_link(hermetic, repo, monkeypatch):
    real = hermetic.tmp / 'lustre'
    real.mkdir(mode=0o700)
    alias = hermetic.tmp / 'scratch-alias'
    alias.symlink_to(real)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(alias))
    ckpt('init', cwd=repo)
    before = head(repo)
    os.symlink(real / 'x', repo / 'viareal')
    git('add', 'viareal', cwd=repo)
    assert_blocked(commit(repo), repo, before, 'viareal')


def test_scratch_root_inside_the_repo(hermetic, repo, monkeypatch):
    root = repo / 'scratch-root'
    root.mkdir(mode=0o700)
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(root))
    ckpt('init', cwd=repo)
    scratch = scratch_path(repo)
    write(scratch / 'run1/log.txt', 'loss 1.0\n')
    git('add', '-f', '--', os.fspath(scratch / 'run1/log.txt'), cwd=repo)
    before = head(repo)
    assert_blocked(commit(repo), repo, before, 'scratch-root/ (', 'inside the scratch root')


def test_missing_root_skips_root_checks_only(inited_repo, hermetic, monkeypatch):
    monkeypatch.setenv('GIT_CKPT_ROOT', os.fspath(hermetic.tmp / 'no-such-root'))
    before = head(inited_repo)
    stage(inited_repo, 'ok.txt')
    assert_committed(commit(inited_repo), inited_repo, before)
    before = head(inited_repo)
    stage(inited_repo, 'out/checkpoint-1/x.json')
    assert_blocked(commit(inited_repo), inited_repo, before, 'out/checkpoint-1/')


def test_allow_patterns_from_config(inited_repo):
    repo = inited_repo
    git('config', '--add', 'ckpt.allow', 'tests/fixtures/*.safetensors', cwd=repo)
    git('config', '--add', 'ckpt.allow', 'tiny.gguf', cwd=repo)
    stage(repo, 'tests/fixtures/deep/tiny.safetensors')
    stage(repo, 'other/place/tiny.gguf')
    before = head(repo)
    assert_committed(commit(repo), repo, before)
    before = head(repo)
    stage(repo, 'models/tiny.safetensors')
    message = assert_blocked(commit(repo), repo, before, 'models/tiny.safetensors')
    assert 'tests/fixtures' not in message
    # The suggested pattern is anchored to this path and works as printed.
    assert "git config --add ckpt.allow /models/tiny.safetensors" in message
    git('config', '--add', 'ckpt.allow', '/models/tiny.safetensors', cwd=repo)
    assert_committed(commit(repo), repo, before)


def test_allow_argument(inited_repo):
    """--allow as the pre-commit framework passes `args:`, run as the hook runs."""
    repo = inited_repo
    stage(repo, 'tests/fixtures/tiny.safetensors')
    stage(repo, 'models/m.safetensors')
    hook = [sys.executable, '-m', 'git_ckpt', '_hook', 'pre-commit']
    proc = run([*hook, '--allow', 'tests/fixtures/*'], cwd=repo, check=False)
    assert proc.returncode == 1 and 'models/m.safetensors' in proc.stderr
    assert 'tests/fixtures' not in proc.stderr
    proc = run([*hook, '--allow=tests/fixtures/*', '--allow', '*.safetensors'], cwd=repo, check=False)
    assert proc.returncode == 0, proc.stderr
    proc = run([*hook, '--allow'], cwd=repo, check=False)
    assert proc.returncode == 1 and 'git-ckpt: error: --allow needs a value' in proc.stderr


def test_first_commit_without_head(hermetic):
    repo = hermetic.tmp / 'fresh'
    git('init', '-q', repo)
    ckpt('init', cwd=repo)
    stage(repo, 'out/checkpoint-1/model.safetensors')
    stage(repo, 'README.md', 'hi\n')
    assert_blocked(commit(repo), repo, None, 'out/checkpoint-1/')
    git('rm', '-r', '-q', '--cached', 'out', cwd=repo)
    assert_committed(commit(repo), repo, None)


@pytest.mark.parametrize('rel, shown', [
    ('my runs/checkpoint-3/a b.json', 'my runs/checkpoint-3/'),
    ('odd\ndir/model.safetensors', 'odd\\ndir/model.safetensors'),
    ('modèles/模型 v2.safetensors', 'modèles/模型 v2.safetensors'),
    ('weird/[x]*?.ckpt', 'weird/[x]*?.ckpt'),
    ('-rf/optimizer.pt', '-rf/optimizer.pt'),
])
def test_odd_paths_and_fix_commands_run_as_printed(inited_repo, rel, shown):
    repo = inited_repo
    stage(repo, rel)
    stage(repo, 'keep.txt', 'keep\n')
    before = head(repo)
    message = assert_blocked(commit(repo), repo, before, shown)
    run(['sh', '-c', fix_commands(message)], cwd=repo)
    assert_committed(commit(repo), repo, before)
    assert git('ls-tree', '-r', '--name-only', '-z', 'HEAD', cwd=repo).stdout.split('\0').count(rel) == 0
    status = git('status', '--porcelain', '-z', '--untracked-files=all', cwd=repo).stdout
    assert rel not in status.split('\0')[0:] and not any(rel in s for s in status.split('\0'))


def test_non_utf8_names_paste_back_as_themselves(inited_repo):
    repo = inited_repo
    name = os.fsdecode(b'caf\xe9')           # latin-1 bytes, not UTF-8
    stage(repo, f'{name}/weights.safetensors')
    stage(repo, 'keep.txt', 'keep\n')
    before = head(repo)
    proc = git('commit', '-q', '-m', 'x', cwd=repo, check=False,
               encoding='utf-8', errors='surrogateescape')
    message = assert_blocked(proc, repo, before, 'caf\\xe9/weights.safetensors (2B)')
    assert f"git rm -r --cached -- '{name}/weights.safetensors'" in message
    run(['sh', '-c', fix_commands(message)], cwd=repo, encoding='utf-8', errors='surrogateescape')
    assert_committed(commit(repo), repo, before)


def test_thousands_of_staged_files(inited_repo):
    repo = inited_repo
    for i in range(3200):
        write(repo / f'src/pkg{i % 40}/mod{i}.py', f'x = {i}\n')
    for step in (100, 200):
        for name in ('model.safetensors', 'optimizer.pt', 'trainer_state.json'):
            write(repo / f'out/checkpoint-{step}/{name}')
    git('add', '-A', '-f', cwd=repo)
    before = head(repo)
    message = assert_blocked(commit(repo), repo, before, '6 staged files',
                             'out/checkpoint-100/ (3 files', 'out/checkpoint-200/ (3 files')
    assert 'mod1' not in message
    git('rm', '-r', '-q', '--cached', 'out', cwd=repo)
    assert_committed(commit(repo), repo, before)
    assert len(git('ls-files', cwd=repo).stdout.splitlines()) > 3200


def test_linked_worktree(inited_repo, hermetic):
    wt = hermetic.tmp / 'projects' / 'exp1'
    git('worktree', 'add', '-q', '-b', 'exp1', wt, cwd=inited_repo)
    scratch = scratch_path(wt)
    assert scratch.is_dir() and scratch != scratch_path(inited_repo)
    before = head(wt)
    stage(wt, 'out/checkpoint-2/model.safetensors')
    assert_blocked(commit(wt), wt, before, 'out/checkpoint-2/')
    git('rm', '-r', '-q', '--cached', 'out', cwd=wt)
    os.symlink(scratch, wt / 'ckpt')
    git('add', 'ckpt', cwd=wt)
    assert_blocked(commit(wt), wt, before, 'ckpt', 'symlink into the scratch root')
    git('rm', '-q', '--cached', 'ckpt', cwd=wt)
    stage(wt, 'train.py')
    assert_committed(commit(wt), wt, before)


def test_sha256_repository(hermetic):
    repo = make_repo(hermetic.tmp / 'projects' / 'p256', object_format='sha256')
    ckpt('init', cwd=repo)
    before = head(repo)
    assert len(before) == 64
    stage(repo, 'out/global_step10/x.pt')
    stage(repo, 'big.bin', os.urandom(11 * 1024 * 1024))
    assert_blocked(commit(repo), repo, before, 'out/global_step10/', 'big.bin (11.0M)')
    git('rm', '-r', '-q', '--cached', 'out', 'big.bin', cwd=repo)
    stage(repo, 'm/model.safetensors', LFS_POINTER)
    os.symlink('/usr/share', repo / 'share')
    git('add', 'share', cwd=repo)
    assert_committed(commit(repo), repo, before)


def test_submodule_is_not_checked_as_a_blob(inited_repo, hermetic):
    sub = make_repo(hermetic.tmp / 'projects' / 'checkpoint-77')
    git('-c', 'protocol.file.allow=always', 'submodule', 'add', '-q', sub, 'vendor/lib', cwd=inited_repo)
    before = head(inited_repo)
    assert_committed(commit(inited_repo), inited_repo, before)


# --- the shim: chaining and a missing git-ckpt ----------------------------------------

def _hooks_dir(repo: Path) -> Path:
    return repo / '.git' / 'hooks'


def test_foreign_pre_commit_hook_is_chained_and_its_failure_fails(repo):
    foreign = _hooks_dir(repo) / 'pre-commit'
    marker = repo.parent / 'foreign-ran'
    write(foreign, f'#!/bin/sh\necho ran >> {marker}\nexit ${{FOREIGN_STATUS:-0}}\n')
    foreign.chmod(0o755)
    ckpt('init', cwd=repo)
    assert (_hooks_dir(repo) / 'pre-commit.pre-git-ckpt').is_file()
    before = head(repo)
    stage(repo, 'a.txt')
    proc = git('commit', '-q', '-m', 'x', cwd=repo, check=False, env={**os.environ, 'FOREIGN_STATUS': '3'})
    assert proc.returncode != 0 and head(repo) == before
    assert_committed(commit(repo), repo, before)
    before = head(repo)
    stage(repo, 'out/checkpoint-1/a')
    assert_blocked(commit(repo), repo, before, 'out/checkpoint-1/')
    assert marker.read_text().count('ran') == 3
    ckpt('uninstall', cwd=repo)
    assert (_hooks_dir(repo) / 'pre-commit').read_text().startswith('#!/bin/sh\necho ran')


def test_guard_fails_closed_when_git_ckpt_is_gone(inited_repo, monkeypatch):
    hook = _hooks_dir(inited_repo) / 'pre-commit'
    text = re.sub(r"^INSTALL_PYTHON=.*$", "INSTALL_PYTHON='/nonexistent/venv/bin/python'",
                  hook.read_text(), flags=re.M)
    hook.write_text(text)
    git_dir = os.path.dirname(shutil.which('git'))
    monkeypatch.setenv('PATH', f'{git_dir}:/usr/bin:/bin')
    assert shutil.which('git-ckpt') is None
    before = head(inited_repo)
    stage(inited_repo, 'a.txt')
    proc = commit(inited_repo)
    assert proc.returncode != 0 and head(inited_repo) == before
    assert 'the commit guard cannot run: git-ckpt is not installed' in proc.stderr
    assert '/nonexistent/venv/bin/python' in proc.stderr and '--no-verify' in proc.stderr
    # The fallback to git-ckpt on PATH.
    monkeypatch.setenv('PATH', f'{BIN_DIR}:{git_dir}:/usr/bin:/bin')
    assert_committed(commit(inited_repo), inited_repo, before)


def _set_hook_line(hook: Path, prefix: str, value: str) -> None:
    text = re.sub(rf"^{prefix}=.*$", f"{prefix}='{value}'", hook.read_text(), flags=re.M)
    hook.write_text(text)


def test_shim_runs_python_without_site_and_never_imports_from_the_repository(inited_repo):
    """The shim starts `python -S` with git_ckpt's dir from INSTALL_PATH; the
    repository's own files (the hook's cwd) must not shadow the standard
    library or git_ckpt: a `re.py`, `bisect.py` or `git_ckpt/` at the top that
    exits 0 would silently let a checkpoint in."""
    repo = inited_repo
    hook = _hooks_dir(repo) / 'pre-commit'
    assert f"INSTALL_PATH={Path(__file__).resolve().parent.parent}" in hook.read_text().replace("'", '')
    assert ' -S -c ' in hook.read_text()
    for rel in ('re.py', 'bisect.py', 'zlib.py', 'git_ckpt/__init__.py', 'git_ckpt/hook_entry.py'):
        stage(repo, rel, 'raise SystemExit(0)\n')
    before = head(repo)
    stage(repo, 'out/checkpoint-3/model.safetensors')
    assert_blocked(commit(repo), repo, before, 'out/checkpoint-3/')


def test_shim_finds_a_moved_package_through_site(inited_repo):
    """INSTALL_PATH no longer holds git_ckpt (reinstalled elsewhere): the
    launcher forgets it and searches as a normal start would (site-packages)."""
    repo = inited_repo
    _set_hook_line(_hooks_dir(repo) / 'pre-commit', 'INSTALL_PATH', str(repo.parent / 'gone'))
    before = head(repo)
    stage(repo, 'out/checkpoint-4/optimizer.pt')
    assert_blocked(commit(repo), repo, before, 'out/checkpoint-4/')
    git('rm', '-r', '-q', '--cached', 'out', cwd=repo)
    stage(repo, 'fine.txt')
    assert_committed(commit(repo), repo, before)


def test_shim_falls_back_to_path_when_the_python_lacks_git_ckpt(inited_repo, hermetic, monkeypatch):
    """An interpreter that cannot import git_ckpt at all (exit 97): git-ckpt on
    PATH runs the guard; without one the commit is blocked, never passed."""
    repo = inited_repo
    bare_venv = hermetic.tmp / 'bare-venv'
    run([sys.executable, '-m', 'venv', '--without-pip', bare_venv])
    hook = _hooks_dir(repo) / 'pre-commit'
    _set_hook_line(hook, 'INSTALL_PYTHON', str(bare_venv / 'bin' / 'python'))
    _set_hook_line(hook, 'INSTALL_PATH', str(hermetic.tmp / 'gone'))
    git_dir = os.path.dirname(shutil.which('git'))
    monkeypatch.setenv('PATH', f'{git_dir}:/usr/bin:/bin')
    assert shutil.which('git-ckpt') is None
    before = head(repo)
    stage(repo, 'a.txt')
    proc = commit(repo)
    assert proc.returncode != 0 and head(repo) == before
    assert 'the commit guard cannot run: git-ckpt is not installed' in proc.stderr
    monkeypatch.setenv('PATH', f'{BIN_DIR}:{git_dir}:/usr/bin:/bin')
    stage(repo, 'out/checkpoint-9/model.safetensors')
    assert_blocked(commit(repo), repo, before, 'out/checkpoint-9/')
    git('rm', '-r', '-q', '--cached', 'out', cwd=repo)
    assert_committed(commit(repo), repo, before)


def test_offenders_among_many_files_case_and_unicode(inited_repo):
    """Offenders anywhere in a long listing (the guard finds candidates with one
    substring search over all paths), in any case, and behind a non-ASCII
    character that IGNORECASE folds (KELVIN SIGN, U+212A, matches 'k')."""
    repo = inited_repo
    for i in range(300):
        write(repo / f'src/m{i}.py', f'X = {i}\n')
    offenders = {'A/Checkpoint-12/x.json': 'A/Checkpoint-12/', 'b/MODEL.SafeTensors': 'b/MODEL.SafeTensors',
                 'c/chec\u212apoint-5/y': 'c/chec\u212apoint-5/', 'z/global_step7/w': 'z/global_step7/',
                 'ünïcode/optimizer.pt': 'ünïcode/optimizer.pt', 'zz/last.CKPT': 'zz/last.CKPT'}
    for rel in offenders:
        write(repo / rel)
    git('add', '-f', '-A', cwd=repo)
    before = head(repo)
    message = assert_blocked(commit(repo), repo, before, *offenders.values())
    assert 'src/m' not in message
    git('rm', '-r', '-q', '--cached', '--', *offenders, cwd=repo)
    assert_committed(commit(repo), repo, before)


# --- init and the pre-commit config ---------------------------------------------------

CONFIG_WITH_COMMENTS = """\
# CI settings first
ci:
  autofix_prs: false   # keep

repos:
-   repo: https://github.com/pre-commit/pre-commit-hooks
    rev: v4.6.0  # pinned on purpose
    hooks:
    -   id: check-yaml
    # -   id: end-of-file-fixer   (disabled)

# the rest
exclude: ^vendor/
"""


def test_init_prints_the_manifest_snippet(repo):
    write(repo / '.pre-commit-config.yaml', CONFIG_WITH_COMMENTS)
    out = ckpt('init', cwd=repo).stdout
    assert '- id: git-ckpt-guard' in out and '- id: git-ckpt-post-checkout' in out
    assert 'rev: v' in out and 'pre-commit install -t pre-commit -t post-checkout' in out
    assert not (_hooks_dir(repo) / 'pre-commit').exists()   # the framework owns the hooks
    manifest = (PROJECT / '.pre-commit-hooks.yaml').read_text()
    for hook_id in re.findall(r'^- id: (\S+)', manifest, re.M):
        assert f'- id: {hook_id}' in out


def test_manifest_is_valid_for_pre_commit():
    pytest.importorskip('pre_commit')
    run([sys.executable, '-m', 'pre_commit', 'validate-manifest', PROJECT / '.pre-commit-hooks.yaml'])


def test_init_pre_commit_config_edits_the_file_once(repo):
    yaml = pytest.importorskip('yaml')
    config = write(repo / '.pre-commit-config.yaml', CONFIG_WITH_COMMENTS)
    ckpt('init', '--pre-commit-config', cwd=repo)
    text = config.read_text()
    for line in CONFIG_WITH_COMMENTS.splitlines():
        assert line in text.splitlines()      # comments and layout kept
    data = yaml.safe_load(text)
    assert [r['repo'] for r in data['repos']][0] == 'https://github.com/pre-commit/pre-commit-hooks'
    ours = data['repos'][1]
    assert [h['id'] for h in ours['hooks']] == ['git-ckpt-guard', 'git-ckpt-post-checkout']
    assert data['exclude'] == '^vendor/' and data['ci'] == {'autofix_prs': False}
    assert data['default_install_hook_types'] == ['pre-commit', 'post-checkout']
    out = ckpt('init', '--pre-commit-config', cwd=repo).stdout
    assert 'already has' in out and config.read_text() == text


def test_init_pre_commit_config_refuses_flow_lists(repo):
    write(repo / '.pre-commit-config.yaml', 'repos: [{repo: local, hooks: []}]\n')
    proc = ckpt('init', '--pre-commit-config', cwd=repo, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith('git-ckpt: error: .pre-commit-config.yaml writes `repos:` as a flow list')
    assert (repo / '.pre-commit-config.yaml').read_text() == 'repos: [{repo: local, hooks: []}]\n'


# --- the real pre-commit framework ----------------------------------------------------

@pytest.fixture(scope='module')
def framework_source(tmp_path_factory):
    """A bare clone of this project at HEAD and one PRE_COMMIT_HOME, shared by
    every test here (and by both xdist workers: pre-commit locks its store),
    so the hook env is built once."""
    pytest.importorskip('pre_commit')
    proc = git('rev-parse', 'HEAD', cwd=PROJECT, check=False)
    if proc.returncode != 0:
        pytest.skip('the project is not a git checkout')
    sha = proc.stdout.strip()
    shared = tmp_path_factory.getbasetemp().parent / 'git-ckpt-pre-commit'
    shared.mkdir(exist_ok=True)
    clone = shared / f'git-ckpt-{sha[:12]}.git'
    with open(shared / '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not clone.exists():
            git('clone', '-q', '--bare', '--no-hardlinks', PROJECT, f'{clone}.tmp')
            os.rename(f'{clone}.tmp', clone)
    return clone, sha, shared / 'home'


@pytest.fixture
def fw_repo(hermetic, framework_source, monkeypatch):
    clone, sha, pre_commit_home = framework_source
    monkeypatch.setenv('PRE_COMMIT_HOME', os.fspath(pre_commit_home))
    repo = hermetic.tmp / 'projects' / 'fw'
    git('init', '-q', repo)
    # The config as `git ckpt init --pre-commit-config` writes it, pointed at
    # the clone of this checkout, with the commented-out args line switched on.
    ckpt('init', '--pre-commit-config', cwd=repo)
    config = repo / '.pre-commit-config.yaml'
    text = config.read_text()
    text = text.replace('https://github.com/git-ckpt/git-ckpt', os.fspath(clone))
    text = re.sub(r'rev: v\S+', f'rev: {sha}', text)
    text = text.replace("# args: [--allow, 'tests/fixtures/*.safetensors']",
                        "args: [--allow, 'tests/fixtures/*.safetensors']")
    config.write_text(text)
    git('add', '.pre-commit-config.yaml', cwd=repo)
    # Plain `install`: default_install_hook_types (added by init) brings post-checkout.
    run([sys.executable, '-m', 'pre_commit', 'install'], cwd=repo)
    assert (repo / '.git/hooks/post-checkout').is_file()
    proc = commit(repo, message='config')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return repo


def fw_blocked(proc, repo, before, *needles):
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert 'git-ckpt-guard' in out and 'git-ckpt: commit blocked' in out, out
    assert head(repo) == before
    for needle in needles:
        assert needle in out, f'{needle!r} not in\n{out}'
    return out


def test_framework_blocks_and_passes(fw_repo):
    repo = fw_repo
    before = head(repo)
    stage(repo, 'out/checkpoint-500/model.safetensors')
    stage(repo, 'out/checkpoint-500/optimizer.pt')
    out = fw_blocked(commit(repo), repo, before, 'out/checkpoint-500/ (2 files',
                     "args: [--allow, 'out/checkpoint-500/*']")
    assert 'Traceback' not in out
    git('rm', '-r', '-q', '--cached', 'out', cwd=repo)
    stage(repo, 'lora/adapter_model.safetensors')
    fw_blocked(commit(repo), repo, before, 'lora/adapter_model.safetensors')
    git('rm', '-q', '--cached', 'lora/adapter_model.safetensors', cwd=repo)
    stage(repo, 'data/big.bin', os.urandom(11 * 1024 * 1024))
    fw_blocked(commit(repo), repo, before, 'data/big.bin (11.0M)')
    git('rm', '-q', '--cached', 'data/big.bin', cwd=repo)
    # Allowed: the args pattern, git config, an LFS pointer, ordinary code.
    stage(repo, 'tests/fixtures/tiny.safetensors')
    stage(repo, 'hub/model.safetensors', LFS_POINTER)
    stage(repo, 'src/checkpoint.py')
    git('config', '--add', 'ckpt.allow', 'golden/*', cwd=repo)
    stage(repo, 'golden/optimizer.pt')
    proc = commit(repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert head(repo) != before


def test_framework_partial_staging_deletion_and_symlink(fw_repo, hermetic):
    repo = fw_repo
    stage(repo, 'out/checkpoint-9/model.safetensors')
    git('commit', '-q', '--no-verify', '-m', 'old mistake', cwd=repo)
    before = head(repo)
    git('rm', '-r', '-q', 'out', cwd=repo)                  # deletion: allowed
    stage(repo, 'data/table.csv', 'a,b\n')                 # small staged blob ...
    write(repo / 'data/table.csv', os.urandom(12 * 1024 * 1024))  # ... big working file
    proc = commit(repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (repo / 'data/table.csv').stat().st_size == 12 * 1024 * 1024  # restored by pre-commit
    before = head(repo)
    stage(repo, 'data/other.csv', os.urandom(12 * 1024 * 1024))  # big staged blob ...
    write(repo / 'data/other.csv', 'a,b\n')                       # ... small working file
    fw_blocked(commit(repo), repo, before, 'data/other.csv (12.0M)')
    git('rm', '-q', '--cached', '-f', 'data/other.csv', cwd=repo)  # -f: see the message's note
    scratch = scratch_path(repo)
    os.symlink(scratch, repo / 'ckpt')
    git('add', 'ckpt', cwd=repo)
    fw_blocked(commit(repo), repo, before, 'symlink into the scratch root')


def test_framework_post_checkout_creates_scratch_for_new_worktree(fw_repo, hermetic):
    wt = hermetic.tmp / 'projects' / 'fw-exp'
    git('worktree', 'add', '-q', '-b', 'exp', wt, cwd=fw_repo)
    scratch = scratch_path(wt)
    assert scratch.is_dir() and (scratch / '.git-ckpt.json').is_file()


# --- pure functions: sizes and config layouts -----------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('10M', 10 * 1024 ** 2), ('500k', 500 * 1024), ('2048', 2048), ('1.5G', 3 * 1024 ** 3 // 2),
    ('10MB', 10 * 1024 ** 2), ('10MiB', 10 * 1024 ** 2), (' 7 k ', 7 * 1024), ('0', 0),
])
def test_parse_size(text, expected):
    from git_ckpt.guard import parse_size
    assert parse_size(text, 'ckpt.maxFileSize') == expected


@pytest.mark.parametrize('text', ['', '-1', '10X', 'M', '1e6', '10 M B'])
def test_parse_size_rejects(text):
    from git_ckpt.errors import GitCkptError
    from git_ckpt.guard import parse_size
    with pytest.raises(GitCkptError, match='is not a size'):
        parse_size(text, 'ckpt.maxFileSize')


@pytest.mark.parametrize('text', [
    '',
    'repos: []\n',
    '# only a comment\n',
    'repos:\n- repo: local\n  hooks:\n  - id: x\n    name: x\n    entry: x\n    language: system\nfail_fast: true\n',
    'minimum_pre_commit_version: 3.2.0\nrepos:\n    -   repo: local\n        hooks:\n        -   id: y\n'
    '            name: y\n            entry: y\n            language: system\n',
    'default_install_hook_types: [pre-commit]\nrepos:\n  - repo: meta\n    hooks:\n      - id: identity\n'
    '  # trailing comment in the list\n',
])
def test_add_entry_layouts(text):
    yaml = pytest.importorskip('yaml')
    from git_ckpt.precommit_config import add_entry
    new = add_entry(text)
    assert add_entry(new) == new
    data = yaml.safe_load(new)
    ours = [r for r in data['repos'] if r['repo'] == 'https://github.com/git-ckpt/git-ckpt']
    assert len(ours) == 1 and [h['id'] for h in ours[0]['hooks']] == ['git-ckpt-guard',
                                                                      'git-ckpt-post-checkout']
    old = yaml.safe_load(text) or {}
    assert data['repos'][:len(old.get('repos') or [])] == (old.get('repos') or [])
    for key, value in old.items():
        if key != 'repos':
            assert data[key] == value
    assert 'default_install_hook_types' in data


# --- the patterns matched without re (guard_patterns) agree with re --------------------

_PATH_ALPHABET = 'checkpoint-tmp_glosbaruns.fdg/0123456789CHEKPTA\n *?[]'


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(['checkpoint-', 'tmp-checkpoint-', 'global_step', '.art',
                                 'unsloth_compiled_cache', '/', '\n', '12', 'x', 'CHECKPOINT-', '-']),
                max_size=6),
       st.text(alphabet=_PATH_ALPHABET, max_size=12))
def test_dir_match_without_re_agrees_with_re(pieces, noise):
    import re as re_module
    from git_ckpt import guard_patterns as P
    assert P._DIR_SUBSET, 'the shipped dir patterns should be matched without re'
    regex = re_module.compile(
        '(?:^|/)(?:' + '|'.join(f'({r})' for r, _, _ in C.GUARD_DIR_PATTERNS) + ')(?=/|$)', re_module.I)
    for path in (''.join(pieces) + noise, noise + ''.join(pieces), ''.join(pieces)):
        m = regex.search(path)
        assert P.dir_match(path) == ((m.lastindex, m.end(m.lastindex)) if m else None), repr(path)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet='abcxyz.*_', min_size=0, max_size=8), st.text(alphabet='abcxyz._\n', max_size=12))
def test_glob_fullmatch_agrees_with_re(name, text):
    import re as re_module
    from git_ckpt.guard_patterns import glob_fullmatch
    expected = bool(re_module.fullmatch(re_module.escape(name).replace(r'\*', '.*'), text, re_module.DOTALL))
    assert glob_fullmatch(name, text) == expected, (name, text)


def test_weight_names_match_as_before():
    from git_ckpt.guard_patterns import weight_name
    assert weight_name('model.safetensors') == '*.safetensors'
    assert weight_name('pytorch_model-00001-of-00002.bin') == 'pytorch_model*.bin'
    assert weight_name('rng_state_3.pth') == 'rng_state*.pth'
    assert weight_name('optimizer.pt') == 'optimizer.pt'
    assert weight_name('optimizer.pth') is None and weight_name('model.safetensors.md') is None


def run_guard_with_stdin(repo: Path, stdin: bytes) -> subprocess.CompletedProcess:
    """The guard as the native shim starts it, with `stdin` as the piped diff."""
    return subprocess.run([sys.executable, '-m', 'git_ckpt', '_hook', 'pre-commit', '--staged-on-stdin'],
                          cwd=repo, input=stdin, capture_output=True)


def test_shim_git_calls_that_failed_or_were_cut_short_are_run_again(inited_repo):
    """The shim pipes git's config and diff with their exit statuses; a failed
    or truncated stream is never read as "nothing staged" (or "no config"):
    the guard runs that git call itself.  The last stream claims nothing is
    staged but that the config failed: the config is read again, and the
    claim is believed, so it is the one stream here that passes."""
    config = b'git-ckpt-config-exit 1\0'
    stage(inited_repo, 'out/checkpoint-7/optimizer.pt')
    for stream in (config + b'git-ckpt-diff-exit 128\0', config, b'', config + b':000000 100644 00',
                   b'git-ckpt-config-exit 128\0git-ckpt-diff-exit 0\0'):
        proc = run_guard_with_stdin(inited_repo, stream)
        if stream.startswith(b'git-ckpt-config-exit 128'):
            assert proc.returncode == 0, proc.stderr
            continue
        assert proc.returncode == 1 and b'out/checkpoint-7/' in proc.stderr, proc.stderr
        assert b'Traceback' not in proc.stderr


def test_real_commits_take_the_piped_diff(inited_repo):
    """Through the installed shim (git runs it): the piped diff is what the
    guard checks, in the main worktree and in a linked one (GIT_DIR set)."""
    repo = inited_repo
    hook = (repo / '.git' / 'hooks' / 'pre-commit').read_text()
    assert '--staged-on-stdin' in hook and 'git diff --cached' in hook
    before = head(repo)
    stage(repo, 'out/checkpoint-3/model.safetensors')
    assert_blocked(commit(repo), repo, before, 'out/checkpoint-3/')
    linked = repo.parent / 'linked wt'
    git('worktree', 'add', '-q', '-b', 'linked', linked, cwd=repo)
    before = head(linked)
    stage(linked, 'sub/checkpoint-9/optimizer.pt')
    assert_blocked(commit(linked), linked, before, 'sub/checkpoint-9/')
    git('rm', '-q', '-r', '--cached', 'sub', cwd=linked)
    stage(linked, 'src/ok.py', 'print(1)\n')
    assert_committed(commit(linked), linked, before)
