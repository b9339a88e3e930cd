#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: the Fashion-MNIST package where apt exists,
# then a virtualenv with lenet_jax installed (with extras, e.g. `scripts/setup.sh dev`).
# Fast when already done: each step is skipped when its result is in place.
#
# The interpreter: $PYTHON if set, else the newest CPython >= 3.12 found (python3.13 and
# python3.12 on PATH, then pyenv's versions), else python3. jax >= 0.11 needs Python 3.12;
# on 3.11 pyproject.toml pins the last JAX stack that runs there. Each candidate is run once,
# so a pyenv shim that is not activated is skipped. $PYTHON_VERSION=3.11 (say) takes the
# newest interpreter of that version instead. $VENV names the virtualenv (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
venv="${VENV:-.venv}"

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get -y -q"
  echo "setup: installing Debian's dataset-fashion-mnist" >&2
  $apt install dataset-fashion-mnist >/dev/null 2>&1 \
    || { $apt update >/dev/null && $apt install dataset-fashion-mnist >/dev/null; } \
    || echo "setup: could not install dataset-fashion-mnist; set --config.data_dir instead" >&2
fi

# The suite opens report.html in a real headless browser where one is installed.
if [ "$extras" = dev ] && ! command -v chromium >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  apt="$sudo env DEBIAN_FRONTEND=noninteractive apt-get -y -q"
  echo "setup: installing Debian's chromium (the report's browser check)" >&2
  $apt install chromium >/dev/null 2>&1 \
    || { $apt update >/dev/null && $apt install chromium >/dev/null; } \
    || echo "setup: could not install chromium; the browser check is skipped" >&2
fi

# Prints "MAJOR.MINOR PATH" for an interpreter that runs and can make a virtualenv.
probe() {
  "$1" -c 'import sys, venv, ensurepip; print("%d.%d" % sys.version_info[:2], sys.executable)' \
    2>/dev/null
}

pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    probe "$PYTHON" || { echo "setup: PYTHON=$PYTHON does not run" >&2; exit 1; }
    return
  fi
  local wanted="${PYTHON_VERSION:-}" pattern="3.1[2-9]"
  [ -n "$wanted" ] && pattern="$wanted"
  local candidates=(python3.13 python3.12 python3)
  [ -n "$wanted" ] && candidates=("python$wanted" python3)
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root 2>/dev/null || true)
    [ -n "$root" ] && candidates+=("$root"/versions/$pattern*/bin/python3)
  fi
  local found="" line
  for candidate in "${candidates[@]}"; do
    line=$(probe "$candidate") || continue
    # shellcheck disable=SC2254  # $pattern is a glob on purpose
    case "${line%% *}" in $pattern) found+="$line"$'\n' ;; esac
  done
  if [ -n "$found" ]; then
    printf '%s' "$found" | sort -V | tail -n1
    return
  fi
  if [ -n "$wanted" ]; then
    echo "setup: no Python $wanted found" >&2
    exit 3
  fi
  probe python3 || { echo "setup: no working python3" >&2; exit 1; }
}

chosen=$(pick_python)
version=${chosen%% *}
python=${chosen#* }
if [ -x "$venv/bin/python" ] && [ "$(probe "$venv/bin/python" | cut -d' ' -f1)" != "$version" ]; then
  echo "setup: $venv is not Python $version; rebuilding it" >&2
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv with Python $version ($python)" >&2
  "$python" -m venv "$venv"
fi
spec=".${extras:+[$extras]}"
stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  echo "setup: installing lenet_jax${extras:+[$extras]} into $venv with Python $version (a few minutes the first time)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -e "$spec" >&2
  touch "$stamp"
fi
