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
HOOK_NAMES = ('post-checkout',)
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
