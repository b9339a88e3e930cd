"""The evaluation report of a split's logits: every metric, per-class accuracy, confusion."""

import dataclasses
import json
import os
import sys

import numpy as np

from lenet_jax import files
from lenet_jax.errors import UserError
from lenet_jax.report.page import EVAL_FILE
from lenet_jax.training import metrics, sweeps
from lenet_jax.training.results import Snapshot


def evaluate_workdir(
    workdir: str,
    checkpoint: str = "best",
    num_examples: int = 0,
    weights: str = "auto",
    *,
    draw_plots: bool = True,
) -> dict:
    """The test split's report for `checkpoint` of the run in `workdir` (the `evaluate`
    command): all of the split, or the run's own subset of `num_examples`, with `weights`.
    Writes eval.json and (`draw_plots`) the plots, atomically, unless a run holds it."""
    from lenet_jax.report import plots
    from lenet_jax.report.inference import combined_logits, load_run, score_split
    from lenet_jax.training import lock

    snapshot = load_run(workdir, checkpoint, weights)
    available = len(snapshot.dataset.test_labels)
    if not 0 <= num_examples <= available:
        raise UserError(f"--num_examples={num_examples}: expected 0 (all) to {available}")
    if num_examples:
        snapshot = dataclasses.replace(
            snapshot,
            run=dataclasses.replace(snapshot.run, dataset=snapshot.dataset.take(0, num_examples)),
        )
    logits, labels, terms = score_split(snapshot)
    report = evaluation_report(snapshot, logits, labels, terms)
    trained_on = snapshot.config.num_test_examples or available
    print(
        f"scored {len(labels):,} test examples of {available:,}"
        + (
            f" (the run evaluated on {trained_on:,}: --num_examples={trained_on})"
            if trained_on != len(labels)
            else ""
        ),
        file=sys.stderr,
        flush=True,
    )
    busy = lock.holder(workdir)
    if busy:
        print(
            f"note: {workdir} is in use by {busy}; eval.json and plots not written",
            file=sys.stderr,
            flush=True,
        )
        return report
    if draw_plots:
        predictions = combined_logits(logits).argmax(-1)
        report["plots"] = plots.write_run_plots(workdir, snapshot, predictions)
    files.write_text(os.path.join(workdir, EVAL_FILE), json.dumps(report, indent=2))
    return report


def evaluation_report(
    snapshot: Snapshot, logits: np.ndarray, labels: np.ndarray, terms: dict | None = None
) -> dict:
    """{"step", "weights", every metric (accuracy, loss, ...) and the loss's named `terms`,
    "per_class_accuracy", "confusion_matrix", "class_names"}: the metrics are those training
    reports (`training.metrics`). A population's (logits (N, examples, classes)) are the
    mean over replicas with `_std` and `_per_replica`, and `ensemble_*` (averaged
    probabilities), whose predictions the per-class figures and the confusion count. A
    sweep's adds "members" (`sweeps.table`: values and scores, best first) and "best"."""
    from lenet_jax.report.inference import combined_logits

    names = snapshot.dataset.class_names
    scores = metrics.evaluate_logits(logits, labels, terms)
    predictions = combined_logits(logits).argmax(-1)
    confusion = metrics.confusion_matrix(labels, predictions, len(names))
    per_class = per_class_accuracy(confusion)
    report = {
        "step": snapshot.step,
        "weights": snapshot.weights,
        "num_examples": len(labels),
        **scores,
        "per_class_accuracy": {name: round(float(acc), 4) for name, acc in zip(names, per_class)},
        "confusion_matrix": confusion.tolist(),
        "class_names": list(names),
    }
    sweep, best = snapshot.run.sweep, snapshot.config.best_metric
    if sweep:
        values = sweeps.current_members(sweep, snapshot.state.opt_state)
        members = sweeps.table(values, scores, best, metrics.metric(best).higher_is_better)
        report |= {"members": members, "best": members[0]}
    return report


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Each true class's share predicted right; 0 for a class with no examples (not NaN)."""
    return confusion.diagonal() / np.maximum(confusion.sum(1), 1)
