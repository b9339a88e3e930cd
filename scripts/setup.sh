#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: the Fashion-MNIST package where apt exists,
# then a virtualenv in .venv with lenet_jax installed (with extras, e.g. `scripts/setup.sh dev`).
# Fast when already done: each step is skipped when its result is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get -y -q"
  echo "setup: installing Debian's dataset-fashion-mnist" >&2
  $apt install dataset-fashion-mnist >/dev/null 2>&1 \
    || { $apt update >/dev/null && $apt install dataset-fashion-mnist >/dev/null; } \
    || echo "setup: could not install dataset-fashion-mnist; set --config.data_dir instead" >&2
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$python" -m venv .venv
fi
spec=".${extras:+[$extras]}"
stamp=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing lenet_jax${extras:+[$extras]} into .venv (a few minutes the first time)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e "$spec" >&2
  touch "$stamp"
fi
