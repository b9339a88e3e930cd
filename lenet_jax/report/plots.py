"""PNG figures of a run: learning curves, the test confusion matrix, misclassified images.

Figures are drawn with matplotlib's object API on the Agg canvas, never through pyplot:
no display is needed, nothing global changes (a notebook keeps its own backend), and no
figure outlives the call that drew it.
"""

import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lenet_jax import files
from lenet_jax.report.inference import combined_logits, predict_split
from lenet_jax.report.page import PLOTS_DIR
from lenet_jax.training import sweeps
from lenet_jax.training.metrics import confusion_matrix, metric
from lenet_jax.training.metrics_log import workdir_rows
from lenet_jax.training.results import Snapshot

_DPI = 120


def plot_curves(rows: list[dict], path: str, *, title: str = "training curves") -> str:
    """Train loss, train accuracy and test accuracy per epoch, as d2l's Animator draws them."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    series = [
        ("train", "loss", "train loss", "-"),
        ("train", "accuracy", "train acc", "--"),
        ("test", "accuracy", "test acc", "-."),
    ]
    plotted = False
    for split, key, label, style in series:
        points = sorted((r["epoch"], r[key]) for r in rows if r.get("split") == split and key in r)
        if points:
            epochs, values = zip(*points, strict=True)
            ax.plot(epochs, values, style, marker="o", markersize=4, linewidth=2, label=label)
            plotted = True
    if plotted:
        ax.legend(fontsize=11)
        ax.set_ylim(bottom=0)
    else:
        _say(ax, "no metrics rows yet")
    ax.set(xlabel="epoch", ylabel="loss / accuracy", title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_confusion(
    confusion: np.ndarray,
    class_names: Sequence[str],
    path: str,
    *,
    title: str = "confusion matrix (test)",
) -> str:
    """Counts per (true class, predicted class); colour is the share of the true class.

    Colouring by share rather than count keeps the off-diagonal mistakes visible next to
    diagonals in the hundreds.
    """
    confusion = np.asarray(confusion)
    n = len(class_names)
    if confusion.shape != (n, n):
        raise ValueError(f"confusion matrix of shape {confusion.shape} for {n} class names")
    share = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.6 * n + 2.5)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    for i in range(n):
        for j in range(n):
            dark = share[i, j] > 0.5
            ax.text(
                j,
                i,
                f"{confusion[i, j]:d}",
                ha="center",
                va="center",
                fontsize=9 if n <= 12 else 7,
                color="white" if dark else ("black" if confusion[i, j] else "0.7"),
            )
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    return save_figure(fig, path)


def plot_misclassified(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    class_names: Sequence[str],
    path: str,
    *,
    max_images: int = 32,
    columns: int = 8,
) -> str:
    """A grid of the first `max_images` wrongly predicted images, "true: X / pred: Y" under each.

    `images` are uint8 NHWC with one channel (shown in grey) or three (RGB).
    """
    wrong = np.flatnonzero(np.asarray(labels) != np.asarray(predictions))
    shown = wrong[:max_images]
    if not len(shown):
        fig = Figure(figsize=(6, 2.5), layout="constrained")
        _say(fig.add_subplot(), f"no misclassified images\n(all {len(labels):,} correct)")
        fig.axes[0].set_axis_off()
        return save_figure(fig, path)
    cols = min(columns, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(1.7 * cols, 2.1 * rows + 0.5), layout="constrained")
    fig.suptitle(
        f"{len(wrong):,} of {len(labels):,} images misclassified; the first {len(shown)}:",
        fontsize=13,
    )
    captions = [
        f"true: {class_names[labels[i]]}\npred: {class_names[predictions[i]]}" for i in shown
    ]
    tiles = np.stack([images[int(i)] for i in shown])  # a streamed split reads by index
    _mosaic(fig.add_subplot(), tiles, captions, rows, cols)
    return save_figure(fig, path)


def _mosaic(ax, images: np.ndarray, captions: list[str], rows: int, cols: int) -> None:
    """The images as one mosaic in one axes, with a caption band under each tile: drawing
    dozens of sub-axes is most of the cost of such a figure."""
    height, width = images.shape[1:3]
    gap, band = max(2, width // 8), int(height * 0.75)
    canvas = np.full((rows * (height + band), cols * (width + gap), 3), 255, np.uint8)
    for k, (image, caption) in enumerate(zip(images, captions, strict=True)):
        row, col = divmod(k, cols)
        top, left = row * (height + band), col * (width + gap)
        canvas[top : top + height, left : left + width] = (
            np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
        )
        ax.text(left + width / 2, top + height + 1, caption, ha="center", va="top", fontsize=9)
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()


def write_run_plots(
    workdir: str, run: Snapshot, test_predictions: np.ndarray | None = None
) -> dict[str, str]:
    """Writes curves.png, confusion.png and misclassified.png into `workdir/plots/`.

    Curves come from `workdir/metrics.jsonl`; the other two from the test split, predicted
    with `run`'s state unless the caller already has its `test_predictions`. Returns
    {"curves": path, "confusion": ..., ...}; a sweep's also draws sweep.png (`plot_sweep`).
    """
    out = os.path.join(workdir, PLOTS_DIR)
    os.makedirs(out, exist_ok=True)
    rows = workdir_rows(workdir)
    images, labels = run.dataset.split("test")
    predictions = test_predictions
    if predictions is None:
        predictions = combined_logits(predict_split(run, "test")[0]).argmax(-1)
    names = run.dataset.class_names
    confusion = confusion_matrix(labels, predictions, len(names))
    accuracy = float((predictions == labels).mean()) if len(labels) else float("nan")
    title = f"{run.config.model.name} on {run.dataset.name}"
    tests = [r for r in rows if r.get("split") == "test"]
    final = f": final test accuracy {tests[-1]['accuracy']:.4f}" if tests else ""
    sweep = run.run.sweep
    drawn = {}
    if sweep and tests:
        name = run.config.best_metric
        members = tests[-1]["members"]  # the values each member ended with
        table = sweeps.table(members, tests[-1], name, metric(name).higher_is_better)
        drawn["sweep"] = plot_sweep(table, sweep.fields, name, os.path.join(out, "sweep.png"))
    return drawn | {
        "curves": plot_curves(rows, os.path.join(out, "curves.png"), title=title + final),
        "confusion": plot_confusion(
            confusion,
            names,
            os.path.join(out, "confusion.png"),
            title=f"{title}: test confusion, step {run.step}, accuracy {accuracy:.4f}",
        ),
        "misclassified": plot_misclassified(
            images, labels, predictions, names, os.path.join(out, "misclassified.png")
        ),
    }


def plot_sweep(table: list[dict], fields: Sequence[str], name: str, path: str) -> str:
    """The final test `name` against each swept field: every member a dot, and per value of
    the other fields a line through the seeds' mean with their spread (one std)."""
    fig = Figure(figsize=(5.5 * len(fields), 4.2), layout="constrained")
    for field, ax in zip(fields, fig.subplots(1, len(fields), squeeze=False)[0], strict=True):
        others = [f for f in fields if f != field]
        groups: dict[tuple, dict[float, list[float]]] = {}
        for row in table:
            key = tuple(row[f] for f in others)
            groups.setdefault(key, {}).setdefault(row[field], []).append(row[name])
        for key, by_value in sorted(groups.items()):
            xs = sorted(by_value)
            means = [np.mean(by_value[x]) for x in xs]
            spread = [np.std(by_value[x]) for x in xs]
            label = ", ".join(f"{f.rpartition('.')[2]}={v:g}" for f, v in zip(others, key)) or None
            ax.errorbar(xs, means, yerr=spread, marker="o", capsize=3, label=label)
            for x in xs:
                ax.plot([x] * len(by_value[x]), by_value[x], ".", color="grey", alpha=0.6)
        values = [row[field] for row in table]
        if min(values) > 0 and max(values) / min(values) >= 10:
            ax.set_xscale("log")
        ax.set_xlabel(field)
        ax.set_ylabel(f"final test {name}")
        if others:
            ax.legend(fontsize=8)
    fig.suptitle(f"{len(table)} members: final test {name} per swept value")
    return save_figure(fig, path)


def _say(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, transform=ax.transAxes)


def save_figure(fig: Figure, path: str) -> str:
    """Saves whole or not at all (`files.atomic_open`): a crash never leaves a cut PNG."""
    with files.atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=_DPI, format="png")
    return path
