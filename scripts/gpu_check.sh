#!/usr/bin/env bash
# The GPU check: one short run on a machine with an accelerator (under 8 minutes on an H100).
# Prints the versions and the device, then runs the step benchmark and whole runs of
# configs/fashion.py (alone, and a sweep of 8 members in one process), configs/cifar10.py
# and configs/cifar10_airbench.py with epoch_loop=auto (no plots: the check keeps their
# metrics and wall times), and writes every figure to one JSON file.
#
#   scripts/gpu_check.sh [--dry-run] [--out FILE] [--python PY] [--cifar_dir DIR]
#
# --dry-run runs the same steps on `:smoke` configs and tiny CIFAR stand-ins, on whatever
# device JAX finds (CPU included): the suite runs it so the script keeps working.
# CIFAR-10 comes from --cifar_dir (a prepared folder), else from ../shared/data through
# scripts/prepare_cifar10.py; without either, the CIFAR runs are recorded as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0 out=runs/gpu_check.json python=.venv/bin/python cifar_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --out) out=$2; shift ;;
    --python) python=$2; shift ;;
    --cifar_dir) cifar_dir=$2; shift ;;
    *) echo "gpu_check: unknown argument '$1'; known: --dry-run --out --python --cifar_dir" >&2
       exit 2 ;;
  esac
  shift
done
[ -x "$python" ] || { echo "gpu_check: no interpreter at $python (run scripts/setup.sh)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/lenet_jax_gpu_check.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"

"$python" - <<'EOF' >"$work/machine.json"
import importlib.metadata as md, json, jax
facts = {p: md.version(p) for p in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint")}
facts |= {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
          "device_kind": jax.devices()[0].device_kind}
print(json.dumps(facts))
EOF
echo "gpu_check: $(cat "$work/machine.json")" >&2

variant="" tiny=() bench_steps=(--steps 100 --warmup 10) convs=()
if [ "$dry" = 1 ]; then  # every step of the check, at the smallest size that runs it
  variant=":smoke" bench_steps=(--steps 3 --warmup 1)
  tiny=(--config.num_train_examples=128 --config.num_test_examples=64 --config.num_epochs=1
        --config.batch_size=32 --config.eval_batch_size=64)
  # XLA's convolutions, which `auto` picks on a GPU: on the CPU they compile faster than
  # the banded ones it picks there, and the dry run rehearses the GPU's run.
  convs=(--config.model.conv_impl=xla)
fi
if [ -z "$cifar_dir" ] && [ -f ../shared/data/cifar10-jpeg.tar.gz ]; then
  cifar_dir=$("$python" scripts/prepare_cifar10.py)
fi

# train CONFIG NAME [OVERRIDES...]: one whole run, its wall time and final test row.
train() {
  local config=$1 name=$2; shift 2
  local started ended
  started=$(date +%s.%N)
  "$python" -m lenet_jax.train --config "$config$variant" --workdir "$work/$name" \
    --config.epoch_loop=auto --config.plots=false "${tiny[@]}" "${convs[@]}" "$@" \
    >"$work/$name.log" 2>&1 \
    || { tail -5 "$work/$name.log" >&2; echo "gpu_check: $name failed" >&2; exit 1; }
  ended=$(date +%s.%N)
  "$python" - "$work/$name" "$name" "$started" "$ended" <<'EOF' >>"$work/runs.jsonl"
import json, sys
workdir, name, started, ended = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
rows = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
train = [r for r in rows if r["split"] == "train"]
test = [r for r in rows if r["split"] == "test"][-1]
print(json.dumps({"run": name, "wall_s": round(ended - started, 2), "epochs": len(train),
                  "test_accuracy": test["accuracy"], "test_loss": test["loss"],
                  "epoch_s": [r["epoch_seconds"] for r in train]}))
EOF
  echo "gpu_check: $(tail -1 "$work/runs.jsonl")" >&2
}

"$python" scripts/benchmark.py --config "configs/fashion.py$variant" "${bench_steps[@]}" \
  "${convs[@]}" --json "$work/bench.json" \
  >"$work/bench.log" 2>&1 || { tail -5 "$work/bench.log" >&2; exit 1; }
train configs/fashion.py fashion
# 8 members of a sweep in one compiled step: their epoch_s against the single run's above.
sweep8='{"optimizer.learning_rate": [1e-3, 2e-3, 4e-3, 8e-3], "optimizer.weight_decay": [0, 5e-4]}'
train configs/fashion.py fashion_sweep8 --config.sweep="$sweep8"
if [ -n "$cifar_dir" ]; then
  train configs/cifar10.py cifar10 --config.data_dir="$cifar_dir"
  train configs/cifar10_airbench.py airbench --config.data_dir="$cifar_dir"
else
  echo "gpu_check: no CIFAR-10 (--cifar_dir or ../shared/data): its runs are skipped" >&2
fi

"$python" - "$work" "$out" "$dry" <<'EOF'
import json, pathlib, sys
work, out, dry = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
runs = [json.loads(line) for line in (work / "runs.jsonl").read_text().splitlines()]
report = {"dry_run": dry, "machine": json.loads((work / "machine.json").read_text()),
          "benchmark": json.loads((work / "bench.json").read_text()), "runs": runs}
pathlib.Path(out).write_text(json.dumps(report, indent=2) + "\n")
print(f"gpu_check: figures in {out}")
EOF
