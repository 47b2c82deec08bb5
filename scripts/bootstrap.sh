#!/usr/bin/env bash
# Create .venv in this clone and install git-ckpt into it (editable), with extras.
#   bash scripts/bootstrap.sh [EXTRAS]      e.g. test,transformers (the default)
# Shared by examples/quickstart.sh and .ci/run so both install the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-test,transformers}
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
case ",$extras," in
    *,transformers,*)
        # torch first, pinned to the CPU wheel: letting pip resolve "torch" for
        # the transformers extra would pull a multi-GB CUDA build.
        .venv/bin/python -m pip install -q torch==2.13.0 ;;
esac
.venv/bin/python -m pip install -q -e ".[$extras]"
