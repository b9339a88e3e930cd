"""The evaluation report of a split's logits: every metric, per-class accuracy, confusion."""

import json
import os

import numpy as np

from lenet_jax.training import metrics
from lenet_jax.training.run import Snapshot


def evaluate_workdir(workdir: str, checkpoint: str = "best") -> dict:
    """The test split's report for `checkpoint` of the run in `workdir` (the `evaluate`
    command); also writes workdir/eval.json and the plots."""
    from lenet_jax.report import plots
    from lenet_jax.report.inference import load_run, predict_split

    snapshot = load_run(workdir, checkpoint)
    logits, labels = predict_split(snapshot)
    report = evaluation_report(snapshot, logits, labels)
    report["plots"] = plots.write_run_plots(workdir, snapshot, logits.argmax(-1))
    with open(os.path.join(workdir, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def evaluation_report(snapshot: Snapshot, logits: np.ndarray, labels: np.ndarray) -> dict:
    """{"step", every metric (accuracy, loss, ...), "per_class_accuracy", "confusion_matrix",
    "class_names"}: the metrics are those training reports (`training.metrics`)."""
    names = snapshot.dataset.class_names
    confusion = confusion_matrix(labels, logits.argmax(-1), len(names))
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {
        "step": snapshot.step,
        **metrics.evaluate_logits(logits, labels),
        "per_class_accuracy": {name: round(float(acc), 4) for name, acc in zip(names, per_class)},
        "confusion_matrix": confusion.tolist(),
        "class_names": list(names),
    }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts per (true class, predicted class): rows are the true class."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return confusion
