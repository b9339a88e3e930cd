"""The airbench recipe's accuracy against whole-run wall time, over widths and epochs.

  .venv/bin/python scripts/airbench_curve.py --variant 16,64,64:4 --variant 16,64,64:8 \\
      --variant 32,128,128:10 --data_dir=$(.venv/bin/python scripts/prepare_cifar10.py)

Each variant `W1,W2,W3:EPOCHS[:BATCH]` is one whole `python -m lenet_jax.train` process of
configs/cifar10_airbench.py on the JPEG CIFAR-10 (`scripts/prepare_cifar10.py`), timed
from start to exit (the config keeps its warmup at 23% of the epochs) and, for another
batch size than the config's, its learning rate scaled with the batch (airbench's rates
are per example). The accuracy is the final test accuracy of the lookahead (EMA)
weights with flip + translate test-time augmentation, as `evaluate` reports it. A
finished variant's workdir (with its wall.json) is reused.

Every finished run is kept as one line of docs/airbench_runs.jsonl (`--record`), with the
fingerprint of its recipe: its resolved config less the fields a variant sets. The plot,
docs/airbench_curve.png, is drawn from that record, so an hour-long run is measured once
and its point outlives its workdir; runs of another recipe than the config's now (an
earlier version of it) are drawn dashed, with their `note`. With no `--variant` the plot
is redrawn from the record alone.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

from absl import app, flags

from lenet_jax.bench.whole_run import timed, train_command
from lenet_jax.config import load_config_file
from lenet_jax.training.metrics_log import read_rows

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "cifar10_airbench.py")
_RECIPE = load_config_file(CONFIG)
BATCH, LEARNING_RATE = _RECIPE.batch_size, _RECIPE.optimizer.learning_rate
_VARIANTS = flags.DEFINE_multi_string("variant", [], "W1,W2,W3:EPOCHS[:BATCH], repeated.")
_ROOT = flags.DEFINE_string("workdir", "runs/airbench_curve", "One workdir per variant here.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "The CIFAR-10 image folder (for --variant).")
_PLOT = flags.DEFINE_string("plot", str(REPO / "docs" / "airbench_curve.png"), "The PNG.")
_RECORD = flags.DEFINE_string(
    "record", str(REPO / "docs" / "airbench_runs.jsonl"), "One JSON line per measured run."
)
# What a variant sets (and what follows num_epochs by reference), left out of the recipe's
# fingerprint; so is where the data lives.
VARIED_FIELDS = (
    ("model", "widths"),
    ("num_epochs",),
    ("batch_size",),
    ("optimizer", "learning_rate"),
    ("optimizer", "warmup_epochs"),
    ("eval_every_epochs",),
    ("data_dir",),
)


def recipe_fingerprint(config: dict) -> str:
    """8 hex digits naming a resolved config (as a dict) less its `VARIED_FIELDS`."""
    config = json.loads(json.dumps(config))  # a deep copy, tuples as lists
    for *parents, name in VARIED_FIELDS:
        owner = config
        for parent in parents:
            owner = owner.get(parent, {})
        owner.pop(name, None)
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]


def parse_variant(spec: str) -> tuple[tuple[int, ...], int, int]:
    widths, _, rest = spec.partition(":")
    epochs, _, batch = rest.partition(":")
    try:
        return tuple(int(w) for w in widths.split(",")), int(epochs), int(batch or BATCH)
    except ValueError:
        raise app.UsageError(
            f"--variant={spec!r}: expected W1,W2,W3:EPOCHS[:BATCH], e.g. 32,128,128:12:512"
        ) from None


def run_variant(widths: tuple[int, ...], epochs: int, batch: int, data_dir: str) -> dict:
    """The variant's figures, from its finished workdir or from a timed run into it."""
    name = f"w{'-'.join(map(str, widths))}_e{epochs}_b{batch}"
    workdir = Path(_ROOT.value) / name
    wall_file = workdir / "wall.json"
    if not wall_file.exists():
        overrides = [
            f"--config.data_dir={data_dir}",
            f"--config.model.widths=({','.join(map(str, widths))})",
            f"--config.batch_size={batch}",
            f"--config.optimizer.learning_rate={LEARNING_RATE * batch / BATCH:g}",
        ]
        command = train_command(sys.executable, CONFIG, str(workdir), epochs, overrides)
        print(f"{name}: {' '.join(command)}", flush=True)
        result = timed(command, cwd=str(REPO))
        wall_file.write_text(json.dumps({"wall_s": result["wall_s"], "command": command}))
    rows = read_rows(workdir / "metrics.jsonl")
    final = {r["split"]: r for r in rows if r["epoch"] == epochs}
    wall = json.loads(wall_file.read_text())
    return {
        "variant": name,
        "recipe": recipe_fingerprint(json.loads((workdir / "config.json").read_text())),
        "widths": list(widths),
        "epochs": epochs,
        "batch_size": batch,
        "wall_s": wall["wall_s"],
        "accuracy": final["test_ema"]["accuracy"],
        "raw_accuracy": final["test"]["accuracy"],
    }


def read_record(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_record(path: str, runs: list[dict]) -> None:
    """`runs` one per line, a rerun of a variant under the same recipe replacing its line."""
    latest = {(r["variant"], r["recipe"]): r for r in runs}
    with open(path, "w") as f:
        for run in sorted(latest.values(), key=lambda r: (r["recipe"], r["wall_s"])):
            f.write(json.dumps(run, sort_keys=True) + "\n")


def plot(results: list[dict], path: str, current_recipe: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    def series(r: dict) -> tuple:
        earlier = "" if r["recipe"] == current_recipe else r.get("note") or r["recipe"]
        return earlier, tuple(r["widths"]), r["batch_size"]

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for recipe, widths, batch in sorted({series(r) for r in results}):
        points = sorted(
            (r for r in results if series(r) == (recipe, widths, batch)), key=lambda r: r["wall_s"]
        )
        minutes = [r["wall_s"] / 60 for r in points]
        label = f"widths {widths}, batch {batch}" + (f" ({recipe})" if recipe else "")
        style = "o--" if recipe else "o-"
        ax.plot(
            minutes, [r["accuracy"] for r in points], style, label=label, alpha=0.6 if recipe else 1
        )
        for r, x in zip(points, minutes):
            ax.annotate(
                f"{r['epochs']} ep",
                (x, r["accuracy"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=8,
            )
    ax.axhline(0.90, color="grey", linestyle="--", linewidth=0.8)
    ax.axvline(60, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("whole-run wall time on 2 CPU cores (minutes)")
    ax.set_ylabel("CIFAR-10 test accuracy (JPEG, EMA, flip+translate TTA)")
    ax.set_title("configs/cifar10_airbench.py: widths and epochs")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv):
    del argv
    variants = [parse_variant(spec) for spec in _VARIANTS.value]
    if variants and not _DATA_DIR.value:
        raise app.UsageError("--data_dir: the CIFAR-10 image folder the variants train on")
    results = [run_variant(*variant, _DATA_DIR.value) for variant in variants]
    runs = read_record(_RECORD.value) + results
    if not runs:
        raise app.UsageError(f"no runs in {_RECORD.value}: give a --variant W1,W2,W3:EPOCHS")
    write_record(_RECORD.value, runs)
    current = recipe_fingerprint(_RECIPE.to_dict())
    for r in read_record(_RECORD.value):
        print(
            f"{r['variant']:>18}  {r['wall_s']:8.1f} s  accuracy {r['accuracy']:.4f} "
            f"(raw weights {r['raw_accuracy']:.4f})"
            + ("" if r["recipe"] == current else f"  [{r.get('note') or r['recipe']}]")
        )
    os.makedirs(os.path.dirname(_PLOT.value), exist_ok=True)
    plot(read_record(_RECORD.value), _PLOT.value, current)
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
