#!/usr/bin/env bash
# The eager PyTorch reference's own virtualenv, .venv-torch: Python 3.11 with torch 2.13.0's
# CPU build (on this project's machines a file on disk; on Python 3.12+ pip would fetch a
# 4 GB CUDA build). `scripts/benchmark.py --compare-torch` runs torch_ref.py with it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TORCH_VENV:-.venv-torch}"
[ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch" 2>/dev/null && exit 0
python=""
for candidate in "${PYTHON311:-}" python3.11 python3 "$(pyenv root 2>/dev/null)/versions/3.11"*/bin/python3; do
  [ -n "$candidate" ] || continue
  if "$candidate" -c 'import sys, venv; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    python=$candidate; break
  fi
done
[ -n "$python" ] || { echo "setup_torch: no Python 3.11 found (set PYTHON311)" >&2; exit 1; }
echo "setup_torch: creating $venv with $python and torch==2.13.0 (CPU)" >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q torch==2.13.0 numpy pillow >&2
