"""Every name, key and default git-ckpt uses, in one place.

Standard library only: the hook path imports this module.
"""
from __future__ import annotations

VERSION = '0.1.0'

# Environment variables.
ENV_DIR = 'GIT_CKPT_DIR'      # the scratch dir itself; wins over everything, no git needed
ENV_ROOT = 'GIT_CKPT_ROOT'    # the scratch root
ENV_QUIET = 'GIT_CKPT_QUIET'  # suppress informational messages
ENV_WORKTREE = 'GIT_CKPT_WORKTREE'  # exported by setup() next to GIT_CKPT_DIR: the worktree top
ENV_SCRATCH = 'SCRATCH'       # set by many HPC sites

# git config keys (section `ckpt`).
CONFIG_ROOT = 'ckpt.root'
CONFIG_NAME = 'ckpt.name'
CONFIG_LINK = 'ckpt.link'
CONFIG_ALLOW = 'ckpt.allow'
CONFIG_MAX_FILE_SIZE = 'ckpt.maxFileSize'
CONFIG_ARCHIVE_DIR = 'ckpt.archiveDir'

# Autodetected scratch roots, in order; `{user}` is the login name.  Each is used
# only if it exists and is writable by us.
AUTODETECT_ROOTS = ('/scratch/{user}', '/lustre/{user}', '/gpfs/{user}')
FALLBACK_ROOT_NAME = 'git-ckpt'  # under the user cache dir ($XDG_CACHE_HOME or ~/.cache)

# Files git-ckpt keeps inside git's own admin dirs.  They die with the worktree
# (`git worktree remove` / `prune` delete the admin dir), which is what makes a
# re-added worktree with a reused admin name get a new scratch dir.
WORKTREE_ID_FILE = 'ckpt-worktree'  # in the worktree's git dir
REPO_ID_FILE = 'ckpt-repo'          # in the common git dir
ID_HEX_LEN = 8

# Files inside the scratch root.
MANIFEST_NAME = '.git-ckpt.json'            # in every managed worktree scratch dir
REPO_MANIFEST_NAME = '.git-ckpt-repo.json'  # in every project dir
STATE_DIR = '.git-ckpt'                     # root-level state: caches, locks, notices
MANIFEST_SCHEMA = 1
DIR_MODE = 0o700

# Hooks.
HOOK_NAMES = ('post-checkout', 'pre-commit')
HOOK_MARKER = 'git-ckpt-hook'          # a line in every hook we install
CHAINED_SUFFIX = '.pre-git-ckpt'       # a foreign hook we displaced, still run by ours
HOOK_PYTHON_LINE = 'INSTALL_PYTHON='   # the line `init` fills with sys.executable
PRE_COMMIT_CONFIG = '.pre-commit-config.yaml'
NULL_SHA1 = '0' * 40
NULL_SHA256 = '0' * 64

# .gitignore block.
IGNORE_BEGIN = '# >>> git-ckpt (managed by `git ckpt init`; edit outside this block) >>>'
IGNORE_END = '# <<< git-ckpt <<<'
IGNORE_PATTERNS = (
    'checkpoint-*/',
    'tmp-checkpoint-*/',
    '.art/',
    'unsloth_compiled_cache/',
    'checkpoints_*/',
)

# Validation of a custom project name (`init --name`, `setup(project_name=)`).
MAX_NAME_LEN = 100

# --- inventory, status, prune (issue 4) ---
CHECKPOINT_PREFIX = 'checkpoint-'          # HF: <run>/checkpoint-<step>
TMP_CHECKPOINT_PREFIX = 'tmp-checkpoint-'  # HF: a save in progress
ART_CHECKPOINTS_DIR = 'checkpoints'        # ART: <run>/checkpoints/<step>
TRAINER_STATE_NAME = 'trainer_state.json'  # written last by HF: marks a complete checkpoint
INVENTORY_CACHE_DIR = 'inventory'          # under STATE_DIR: one size cache per scratch dir
INVENTORY_CACHE_SCHEMA = 1
LOCK_DIR = 'locks'                         # under STATE_DIR: one lock file per scratch dir
PRUNE_GRACE_SECONDS = 300.0                # anything modified this recently may be mid-save
PRUNE_TRASH_PREFIX = '.git-ckpt-deleting-'  # a checkpoint renamed away while it is deleted
PROGRESS_AFTER_SECONDS = 0.5               # show a progress bar once deleting takes this long
STATUS_JSON_SCHEMA = 1

# --- archive, restore, remove, gc (issue 5) ---
TRANSFER_MANIFEST_NAME = '.git-ckpt-archive.json'   # checksum manifest inside every archive
TRANSFER_JOURNAL_NAME = '.git-ckpt-transfer.journal'  # files done so far, inside a .partial
PARTIAL_SUFFIX = '.partial'                        # a transfer in progress (or killed)
ARCHIVE_AREA = 'archive'                           # <root>/archive when ckpt.archiveDir is unset
ARCHIVE_FORMATS = ('dir', 'tar.zst')
ORPHAN_NOTICE_STAMP = 'orphan-notice'              # in STATE_DIR: when the notice last showed
ORPHAN_NOTICE_INTERVAL = 24 * 3600                 # seconds between two notices

# --- links, doctor, migrate (issue 7) ---
# transformers versions git_ckpt.setup() supports: >= first, < second.
TRANSFORMERS_SUPPORTED = ('4.46', '6')
DOCTOR_JSON_SCHEMA = 1
DOCTOR_FAIL_FREE_BYTES = 100 * 2**20       # less free space than this on root or home: a problem
DOCTOR_WARN_FREE_BYTES = 1 * 2**30         # less than this: a warning
DOCTOR_HF_CACHE_WARN_BYTES = 1 * 2**20     # an HF cache on home bigger than this: suggest migrate
# Top-level worktree dirs `git ckpt migrate` proposes (besides checkpoint dirs and links).
MIGRATE_CANDIDATE_NAMES = ('.art', 'outputs', 'output', 'unsloth_compiled_cache', 'lightning_logs',
                           'wandb', 'checkpoints', 'runs', 'mlruns')
MIGRATE_CHECKPOINT_GLOBS = ('checkpoint-*', 'tmp-checkpoint-*', 'checkpoints_*')
HF_CACHE_DIR_NAME = 'huggingface'   # <root>/huggingface: where migrate --hf-cache puts the cache
ENV_HF_HOME = 'HF_HOME'

# --- Commit guard (guard.py, guard_message.py, .pre-commit-hooks.yaml) -------
# Path components that mark a training output dir: (regex for one component,
# label in the message, the .gitignore line that keeps the kind out).
GUARD_DIR_PATTERNS = (
    (r'checkpoint-[0-9]+', 'checkpoint-<n>', 'checkpoint-*/'),
    (r'tmp-checkpoint-[^/]*', 'tmp-checkpoint-*', 'tmp-checkpoint-*/'),  # [^/]: ends at its dir
    (r'global_step[0-9]+', 'global_step<n> (DeepSpeed)', 'global_step*/'),
    (r'\.art', '.art', '.art/'),
    (r'unsloth_compiled_cache', 'unsloth_compiled_cache', 'unsloth_compiled_cache/'),
)
# Weights and training state, by file name (`*` does not cross `/`).
GUARD_WEIGHT_NAMES = (
    '*.safetensors', 'pytorch_model*.bin', 'adapter_model.*', 'optimizer.pt', 'scheduler.pt',
    'scaler.pt', 'rng_state*.pth', 'training_args.bin', '*.ckpt', '*.gguf',
)
GUARD_DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024   # 10M; ckpt.maxFileSize, 0 = no limit
# Staged loose objects from which the guard splits its size stats with one
# forked process (a fork costs ~1 ms; 2,000 stats ~5 ms).
GUARD_FORK_MIN_OBJECTS = 2000
# Files given to the guard (pre-commit framework) up to which `git ls-files`
# gets them as pathspecs; more, and it lists the whole index (cheaper then).
GUARD_INDEX_PATHSPECS_MAX = 64
LFS_POINTER_MAX_SIZE = 1024                        # git-lfs spec: pointers are < 1024 bytes
LFS_POINTER_PREFIX = b'version https://git-lfs.github.com/spec/v1\n'
GUARD_HOOK_ID = 'git-ckpt-guard'                 # ids in .pre-commit-hooks.yaml
POST_CHECKOUT_HOOK_ID = 'git-ckpt-post-checkout'
PRE_COMMIT_REPO_URL = 'https://github.com/git-ckpt/git-ckpt'
PRE_COMMIT_HOOK_TYPES = ('pre-commit', 'post-checkout')

# --- Commit guard speed (issue 3, guardperf) ---
# The pre-commit shim's line `init` fills with the dir holding the git_ckpt
# package: the shim runs `python -S` (no site-packages scan) and imports from there.
HOOK_PACKAGE_PATH_LINE = 'INSTALL_PATH='
# Around the pre-commit shim's `python -S -c '...'` launcher, which doctor runs
# with --version to probe the hook the way it starts.
HOOK_LAUNCHER_START = '"$INSTALL_PYTHON" -S -c \''
HOOK_LAUNCHER_END = '\' "$INSTALL_PATH" '

# --- setup() outside any repository (issue 6 follow-up) ---
# A GIT_CKPT_DIR dir that setup() created (or found empty) outside any scratch
# root gets a manifest with "standalone": true, so prune and setup(keep=N) may
# delete old checkpoints in it.  It has no root above it for root-level state,
# so its lock and size cache live in this hidden dir inside it.
STANDALONE_STATE_DIR = '.git-ckpt-state'

# --- parallel scans and deletes (issue 4 speed: workers.py) ---
ENV_WORKERS = 'GIT_CKPT_WORKERS'   # at most this many processes for a scan/delete (1: never fork)
MAX_WORKERS = 4                    # the default cap (the CPUs we may run on count too)

# --- fault suite fixes (issue 8, crash) ---
RESTORE_STAGING_PREFIX = '.git-ckpt-restore-'   # <target>/<prefix><archive name>: a restore in progress (or killed)
