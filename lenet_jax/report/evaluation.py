"""The evaluation report of a split's logits: every metric, per-class accuracy, confusion."""

import numpy as np

from lenet_jax.training import metrics
from lenet_jax.training.run import Snapshot


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
