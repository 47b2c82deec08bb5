#!/usr/bin/env bash
# git-ckpt quickstart: an end-to-end demo in a throwaway sandbox.
#
#   bash examples/quickstart.sh
#
# Everything happens under one `mktemp -d` dir (a repo, its worktrees, a
# scratch root, a HOME and a global git config of its own) that is deleted on
# exit; your real home, git config and scratch are not touched.  When git-ckpt
# is not installed it installs it into this clone's .venv first (set
# QUICKSTART_INSTALL=0 to refuse that and get instructions instead).
# Each step is a numbered `step` block; later features add theirs at the end.
set -euo pipefail

# --- find git-ckpt (install it into this clone's .venv when it is nowhere) -------
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
# Imports are tried from / so that a clone's own git_ckpt/ (the current dir) does not count.
importable() { (cd / && "$PYTHON" -c "import $1" >/dev/null 2>&1); }
if ! command -v git-ckpt >/dev/null 2>&1 && ! importable git_ckpt; then
    if [ "${QUICKSTART_INSTALL:-1}" = 1 ] && [ -f "$HERE/../pyproject.toml" ]; then
        echo "quickstart: git-ckpt is not installed; installing it into $(cd "$HERE/.." && pwd)/.venv (once)"
        bash "$HERE/../scripts/bootstrap.sh" transformers
        PYTHON="$(cd "$HERE/.." && pwd)/.venv/bin/python"
        export PATH="$(dirname "$PYTHON"):$PATH"
    else
        echo "quickstart: git-ckpt is not installed for $PYTHON: pip install git-ckpt," >&2
        echo "quickstart: or point PYTHON at an interpreter that has it: PYTHON=/path/to/python bash $0" >&2
        exit 2
    fi
fi
if command -v git-ckpt >/dev/null 2>&1; then
    ckpt() { git ckpt "$@"; }
else
    # The console script is not on PATH (a cluster's module system, say):
    # `python -m git_ckpt` is the same command.
    ckpt() { "$PYTHON" -m git_ckpt "$@"; }
fi
if command -v git-ckpt >/dev/null 2>&1 && ! importable git_ckpt; then
    # git-ckpt is on PATH: train with the interpreter it runs on.
    PYTHON=$(sed -n '1s/^#!//p' "$(command -v git-ckpt)")
fi
CAN_TRAIN=0
importable 'git_ckpt, transformers, torch' && CAN_TRAIN=1

# --- a sandbox that is removed on exit -------------------------------------------
SANDBOX=$(mktemp -d "${TMPDIR:-/tmp}/git-ckpt-quickstart.XXXXXX")
trap 'rm -rf "$SANDBOX"' EXIT
mkdir "$SANDBOX/tmp"
export TMPDIR="$SANDBOX/tmp"   # torch and friends leave caches in TMPDIR
export HOME="$SANDBOX/home"
export GIT_CONFIG_GLOBAL="$HOME/.gitconfig"
export GIT_CONFIG_NOSYSTEM=1
unset GIT_CKPT_DIR GIT_CKPT_ROOT GIT_CKPT_QUIET SCRATCH XDG_CACHE_HOME GIT_DIR GIT_WORK_TREE
mkdir -p "$HOME"
git config --global user.name 'Quickstart'
git config --global user.email 'quickstart@example.invalid'
git config --global init.defaultBranch main
git config --global advice.detachedHead false

ROOT="$SANDBOX/scratch"       # stands in for /scratch/$USER
PROJECTS="$SANDBOX/code"      # stands in for ~/code

n=0
step() {
    n=$((n + 1))
    printf '\n== %d. %s\n' "$n" "$*"
}
show() {  # print a command as you would type it, then run it
    if [ "$1" = ckpt ]; then printf '$ git %s\n' "$*"; else printf '$ %s\n' "$*"; fi
    "$@"
}

step "a project repository with one commit"
mkdir -p "$PROJECTS/proj" "$ROOT"
chmod 700 "$ROOT"
cd "$PROJECTS/proj"
git init -q
cp "$HERE/train_tiny.py" train.py
git add train.py
git commit -q -m 'first commit'
echo "repo: $PWD"

step "git ckpt init: record the scratch root, install the hook, add the .gitignore block"
show ckpt init --root "$ROOT"
show cat .gitignore

step "git worktree add, twice: the hook creates each new worktree's scratch dir"
show git worktree add -q ../exp1 2>&1
show git worktree add -q ../exp2 -b lr-sweep 2>&1

step "git ckpt path in each worktree: one dir per worktree"
for wt in proj exp1 exp2; do
    cd "$PROJECTS/$wt"
    printf '%-5s -> %s\n' "$wt" "$(ckpt path)"
done
cd "$PROJECTS/exp1"
echo 'a training script writes there: --output_dir "$(git ckpt path)/run1"'
cd "$PROJECTS/exp1/"
git switch -q -c exp1-variant
echo "after a branch switch exp1 still maps to: $(ckpt path)"

if [ "$CAN_TRAIN" = 1 ]; then
    export TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_OFFLINE=1
    step "train in two worktrees at once: git_ckpt.setup() sends each run's checkpoints to its own scratch dir"
    for wt in exp1 exp2; do
        cd "$PROJECTS/$wt"
        show "$PYTHON" train.py --max-steps 6 --save-steps 2 --save-total-limit 2 | tail -n 1
        show ls -l out
    done
    cd "$PROJECTS/exp1"
    show "$PYTHON" train.py --max-steps 8 --save-steps 2 --save-total-limit 2 --resume | tail -n 1

    step "git ckpt status: every worktree, its checkpoints and their size"
    show ckpt status

    step "the commit guard: a checkpoint added by force is still refused"
    mkdir -p stray/checkpoint-500
    printf 'weights' > stray/checkpoint-500/model.safetensors
    git add -f stray
    if show git commit -q -m 'oops'; then echo "quickstart: the guard let a checkpoint through" >&2; exit 1; fi
    git rm -r -q --cached stray && rm -rf stray
else
    step "training skipped: transformers/torch are not installed for $PYTHON (pip install 'git-ckpt[transformers]')"
fi

step "the scratch root"
cd "$ROOT"
find . -mindepth 1 -maxdepth 4 -not -name '*.json' | sort | sed -e 's|^\./||' -e 's|[^/]*/|    |g'

step "done with exp1: git ckpt remove --archive removes the worktree and archives its checkpoints"
cd "$PROJECTS/proj"
show ckpt remove --archive ../exp1
show git worktree list
echo "the archive (a rename on the same filesystem, with its manifest):"
find "$ROOT/archive" -mindepth 1 -maxdepth 3 | sort | sed -e "s|^$ROOT/archive/||" -e 's|[^/]*/|    |g'

echo
echo "quickstart: done; the sandbox $SANDBOX is removed on exit"
