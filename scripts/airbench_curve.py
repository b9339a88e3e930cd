"""The airbench recipe's accuracy against whole-run wall time, over widths and epochs.

  .venv/bin/python scripts/airbench_curve.py --variant 16,64,64:4 --variant 16,64,64:8 \\
      --variant 32,128,128:10 --data_dir=$(.venv/bin/python scripts/prepare_cifar10.py)

Each variant `W1,W2,W3:EPOCHS[:BATCH]` is one whole `python -m lenet_jax.train` process of
configs/cifar10_airbench.py on the JPEG CIFAR-10 (`scripts/prepare_cifar10.py`), timed
from start to exit (the config keeps its warmup at 23% of the epochs) and, for another
batch size than the config's, its learning rate scaled with the batch (airbench's rates
are per example). The accuracy is the final test accuracy of the lookahead (EMA)
weights with flip + translate test-time augmentation, as `evaluate` reports it. A
finished variant's workdir (with its wall.json) is reused, so variants can be added one
run at a time; one whose wall.json carries a `recipe` label (a run of an earlier version
of the config) is drawn dashed, with the label. Writes docs/airbench_curve.png and a JSON
line.
"""

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
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The CIFAR-10 image folder.", required=True)
_PLOT = flags.DEFINE_string("plot", str(REPO / "docs" / "airbench_curve.png"), "The PNG.")


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
        # A run of an earlier version of the config carries a label saying which.
        "recipe": wall.get("recipe", ""),
        "widths": list(widths),
        "epochs": epochs,
        "batch_size": batch,
        "wall_s": wall["wall_s"],
        "accuracy": final["test_ema"]["accuracy"],
        "raw_accuracy": final["test"]["accuracy"],
    }


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    def series(r: dict) -> tuple:
        return r["recipe"], tuple(r["widths"]), r["batch_size"]

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
    if not _VARIANTS.value:
        raise app.UsageError("give at least one --variant W1,W2,W3:EPOCHS")
    variants = [parse_variant(spec) for spec in _VARIANTS.value]
    results = [run_variant(*variant, _DATA_DIR.value) for variant in variants]
    for r in results:
        print(
            f"{r['variant']:>18}  {r['wall_s']:8.1f} s  accuracy {r['accuracy']:.4f} "
            f"(raw weights {r['raw_accuracy']:.4f})"
        )
    os.makedirs(os.path.dirname(_PLOT.value), exist_ok=True)
    plot(results, _PLOT.value)
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
