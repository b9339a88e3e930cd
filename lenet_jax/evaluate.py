"""`python -m lenet_jax.evaluate --workdir DIR [--checkpoint latest|best|STEP]`.

Restores a checkpoint and the run's config, evaluates the test split and prints one JSON
line (accuracy, loss, per-class accuracy, confusion matrix); also writes DIR/eval.json.
"""

import json
import os

import jax
import numpy as np
from absl import app, flags, logging

from lenet_jax import cli, steps
from lenet_jax.inference import LoadedRun, load_run

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "latest, best, or a step number.")
_BATCH = 1000


def predict_split(run: LoadedRun, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) for every example of `split`, in order."""
    images, labels = run.dataset.split(split)
    predict = jax.jit(
        steps.make_predict_step(run.model, mean=run.dataset.mean, std=run.dataset.std)
    )
    logits = [
        np.asarray(predict(run.state, images[i : i + _BATCH]))
        for i in range(0, len(labels), _BATCH)
    ]
    return np.concatenate(logits), labels


def evaluation_report(run: LoadedRun, logits: np.ndarray, labels: np.ndarray) -> dict:
    num_classes = run.dataset.num_classes
    predictions = logits.argmax(-1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predictions), 1)  # rows: true class, columns: predicted
    loss = float(np.mean(steps.cross_entropy(logits, labels)))
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {
        "step": run.step,
        "accuracy": float((predictions == labels).mean()),
        "loss": loss,
        "per_class_accuracy": {
            name: round(float(acc), 4) for name, acc in zip(run.dataset.class_names, per_class)
        },
        "confusion_matrix": confusion.tolist(),
        "class_names": list(run.dataset.class_names),
    }


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    with cli.user_errors_as_one_line():
        run = load_run(_WORKDIR.value, _CHECKPOINT.value)
        logits, labels = predict_split(run)
        report = evaluation_report(run, logits, labels)
    with open(os.path.join(_WORKDIR.value, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(main, flags_parser=cli.parse_flags)
