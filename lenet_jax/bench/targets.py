"""Time to target test accuracies, from a whole `train_and_evaluate` run."""

import os
import tempfile
import time
from collections.abc import Sequence

import ml_collections

from lenet_jax.training.loop import train_and_evaluate
from lenet_jax.training.metrics_log import METRICS_FILE, read_rows


def time_to_targets(rows: Sequence[dict], targets: Sequence[float]) -> dict[str, dict | None]:
    """For each target, the first epoch whose test accuracy reached it (None: never).

    `train_seconds` sums the train rows' `epoch_seconds` up to that epoch: training time
    (the first epoch's includes compilation), without evaluation and checkpoint saving.
    """
    train_seconds, cumulative = 0.0, {}
    for row in rows:
        if row["split"] == "train":
            train_seconds += row["epoch_seconds"]
            cumulative[row["epoch"]] = train_seconds
    reached: dict[str, dict | None] = {}
    for target in targets:
        hit = next(
            (r for r in rows if r["split"] == "test" and r["accuracy"] >= target),
            None,
        )
        reached[f"{target:g}"] = hit and {
            "epoch": hit["epoch"],
            "step": hit["step"],
            "test_accuracy": hit["accuracy"],
            "train_seconds": round(cumulative[hit["epoch"]], 4),
        }
    return reached


def run_time_to_target(config: ml_collections.ConfigDict, targets: Sequence[float]) -> dict:
    """Trains per `config` in a fresh temporary workdir; wall time and time to each target."""
    with tempfile.TemporaryDirectory(prefix="lenet_jax_bench_") as workdir:
        started = time.perf_counter()
        result = train_and_evaluate(config, workdir)
        wall_s = time.perf_counter() - started
        rows = read_rows(os.path.join(workdir, METRICS_FILE))
    train_s = sum(r["epoch_seconds"] for r in rows if r["split"] == "train")
    return {
        "epochs": config.num_epochs,
        "wall_s": round(wall_s, 3),
        "train_s": round(train_s, 3),
        "other_s": round(wall_s - train_s, 3),  # data loading, evaluation, checkpoints
        "final_test_accuracy": result.test["accuracy"],
        "test_accuracy_by_epoch": [r["accuracy"] for r in rows if r["split"] == "test"],
        "targets": time_to_targets(rows, targets),
    }
