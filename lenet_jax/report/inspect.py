"""Pictures of what a trained network learned and where it looks, as matplotlib figures a
notebook shows and `python -m lenet_jax.inspect` saves:

  from lenet_jax.report import inference, inspect
  run = inference.load_run("runs/fashion")
  images, labels = run.dataset.split("test")
  inspect.feature_maps(run, images[0])          # every conv and pooling layer's output
  inspect.filters(run); inspect.saliency(run, images[:4], labels[:4])
  inspect.embedding(run); inspect.classes(run)

Figures are drawn with matplotlib's object API (no pyplot), as `report.plots` draws.
"""

import math

import numpy as np
from matplotlib.figure import Figure

from lenet_jax.models import probe
from lenet_jax.report import inside
from lenet_jax.report.inference import predict_split, softmax
from lenet_jax.training.results import Snapshot

MAX_CHANNELS = 16  # per layer in feature_maps; the rest are counted in the title


def _show(ax, image: np.ndarray, title: str = "", **kwargs) -> None:
    """A uint8 HxWx1 (grey) or HxWx3 image, or a 2-D map, without axes."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
        kwargs.setdefault("cmap", "gray")
    ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def _tile(kernel: np.ndarray) -> np.ndarray:
    """One kernel (kh, kw, in) as an image: RGB for three input channels, else grey."""
    k = kernel - kernel.min()
    k = k / max(float(k.max()), 1e-12)
    return k if k.shape[-1] == 3 else k.mean(-1, keepdims=True)


def filters(snapshot: Snapshot) -> Figure:
    """The first convolution's kernels as image tiles (RGB for colour input), and for each
    deeper one a map of each kernel's norm per (output, input) channel."""
    images = np.zeros((1, *snapshot.dataset.image_shape), np.uint8)
    convs = [layer for layer in inside.look(snapshot, images).layers if layer.kind == probe.CONV]
    if not convs:
        return _message("no convolution found in the model: no filters to draw")
    first = np.asarray(convs[0].kernel)
    count, columns = first.shape[-1], min(first.shape[-1], 8)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(max(6, 1.1 * columns), 1.2 * rows + 3.2 * (len(convs) > 1) + 0.8))
    grid = fig.add_gridspec(rows + (len(convs) > 1), max(columns, len(convs) - 1))
    fig.suptitle(f"{convs[0].path}: {count} kernels {first.shape[0]}x{first.shape[1]}")
    for c in range(count):
        _show(fig.add_subplot(grid[c // columns, c % columns]), _tile(first[..., c]), f"{c}")
    for i, layer in enumerate(convs[1:]):
        norms = np.sqrt((np.asarray(layer.kernel) ** 2).sum(axis=(0, 1)))  # (in, out)
        ax = fig.add_subplot(grid[rows, i])
        ax.imshow(norms.T, aspect="auto", cmap="magma")
        ax.set(xlabel="input channel", ylabel="output channel")
        ax.set_title(f"{layer.path}: kernel norm", fontsize=8)
    fig.set_layout_engine("constrained")
    return fig


def feature_maps(snapshot: Snapshot, image: np.ndarray, *, max_channels: int = MAX_CHANNELS):
    """The image, then every convolution's and pooling layer's output channels in call
    order, each row titled with the layer's path and shape (LeNet's C1, S2, C3, S4)."""
    probed = inside.look(snapshot, np.asarray(image)[None])
    shown = [layer for layer in probed.layers if layer.kind in (probe.CONV, probe.POOL)]
    if not shown:
        return _message("no convolution or pooling layer found in the model")
    columns = min(max_channels, max(layer.output.shape[-1] for layer in shown))
    fig = Figure(figsize=(1.0 * columns + 1.2, 1.15 * (len(shown) + 1)), layout="constrained")
    grid = fig.add_gridspec(len(shown) + 1, columns)
    predicted = snapshot.dataset.class_names[int(np.argmax(probed.logits[0]))]
    _show(fig.add_subplot(grid[0, 0]), image, f"input\npredicted {predicted}")
    for row, layer in enumerate(shown, start=1):
        output = np.asarray(layer.output[0])
        height, width, channels = output.shape
        for c in range(min(channels, columns)):
            shown_of = f" (the first {columns})" if channels > columns else ""
            title = f"{layer.kind} {layer.path}  {height}x{width}x{channels}{shown_of}"
            title = title if c == 0 else ""
            ax = fig.add_subplot(grid[row, c])
            _show(ax, output[..., c], cmap="viridis")
            ax.set_title(title, fontsize=8, loc="left")
    return fig


def saliency(
    snapshot: Snapshot, images: np.ndarray, labels: np.ndarray, *, layer: str | None = None
) -> Figure:
    """Per image: the image, then for the predicted and the true class the input-gradient
    saliency (|gradient|, the largest over colour channels) and Grad-CAM on `layer` (by
    default the last spatial layer: the last convolution's, after its activation and
    pooling), each cell drawn over the pixels it looks at (`inside.layer_grid`)."""
    images, labels = np.asarray(images), np.asarray(labels)
    logits = inside.look(snapshot, images).logits
    predicted = logits.argmax(-1)
    names = snapshot.dataset.class_names
    fig = Figure(figsize=(10, 2.1 * len(images) + 0.6), layout="constrained")
    grid = fig.add_gridspec(len(images), 5)
    cells = None
    for which, classes in (("predicted", predicted), ("true", labels)):
        gradient = np.abs(inside.input_saliency(snapshot, images, classes)).max(-1)
        path, cams = inside.grad_cam(snapshot, images, classes, layer)
        cells = cells or inside.layer_grid(snapshot, path)
        column = 1 if which == "predicted" else 3
        for i in range(len(images)):
            name = names[int(classes[i])]
            _show(fig.add_subplot(grid[i, column]), gradient[i], f"saliency: {name}", cmap="hot")
            ax = fig.add_subplot(grid[i, column + 1])
            _show(ax, _grey(images[i]), f"Grad-CAM {path}: {name}", cmap="gray")
            _overlay(ax, cams[i], cells, images.shape[1:3])
    for i in range(len(images)):
        title = f"true {names[int(labels[i])]}\npredicted {names[int(predicted[i])]}"
        _show(fig.add_subplot(grid[i, 0]), images[i], title)
    return fig


def _overlay(ax, cam: np.ndarray, cells: tuple[float, ...], size: tuple[int, int]) -> None:
    """A layer's heat map over its image, each cell where `layer_grid` says it looks."""
    row0, row_step, col0, col_step = cells
    rows, cols = cam.shape
    extent = (
        col0 - col_step / 2,
        col0 + col_step * (cols - 0.5),
        row0 + row_step * (rows - 0.5),
        row0 - row_step / 2,
    )
    ax.imshow(cam, cmap="jet", alpha=0.45, extent=extent)
    ax.set(xlim=(-0.5, size[1] - 0.5), ylim=(size[0] - 0.5, -0.5))


def _grey(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, np.float32).mean(-1)


def embedding(snapshot: Snapshot, split: str = "test") -> Figure:
    """The classifier's features of every example of `split`, projected on their first two
    principal axes (PCA), coloured by true class."""
    features, _ = inside.split_features(snapshot, split)
    labels = snapshot.dataset.split(split)[1]
    points, share = inside.pca(features)
    fig = Figure(figsize=(7.5, 6), layout="constrained")
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(snapshot.dataset.class_names))]
    for c, name in enumerate(snapshot.dataset.class_names):
        at = labels == c
        ax.scatter(points[at, 0], points[at, 1], s=4, alpha=0.6, color=colours[c], label=name)
    ax.legend(markerscale=4, fontsize=8, loc="best")
    ax.set(
        xlabel=f"PC 1 ({share[0]:.0%} of the variance)",
        ylabel=f"PC 2 ({share[1] if len(share) > 1 else 0:.0%})",
        title=f"{len(points):,} {split} examples: the classifier's {features.shape[1]} features",
    )
    return fig


def classes(
    snapshot: Snapshot, *, correct: int = 4, mistakes: int = 3, logits: np.ndarray | None = None
) -> Figure:
    """Per class: its most confidently right test examples, then the most confident mistakes
    on it (the true class predicted as another), each with its probability. `logits`: the
    test split's, where the caller has them (else predicted here)."""
    images, labels = snapshot.dataset.split("test")
    if logits is None:
        logits = predict_split(snapshot, "test")[0]
    probabilities = softmax(np.asarray(logits, np.float64))
    predicted = probabilities.argmax(-1)
    names = snapshot.dataset.class_names
    fig = Figure(figsize=(1.3 * (correct + mistakes) + 1, 1.45 * len(names)), layout="constrained")
    grid = fig.add_gridspec(len(names), correct + mistakes)
    confidence = probabilities.max(-1)
    for c, name in enumerate(names):
        for kind, wanted, count, offset in (
            ("right", (labels == c) & (predicted == c), correct, 0),
            ("wrong", (labels == c) & (predicted != c), mistakes, correct),
        ):
            found = np.flatnonzero(wanted)
            found = found[np.argsort(-confidence[found], kind="stable")][:count]
            for k in range(count):
                ax = fig.add_subplot(grid[c, offset + k])
                ax.set_axis_off()
                if k < len(found):
                    i = found[k]
                    label = name if kind == "right" else f"as {names[predicted[i]]}"
                    _show(ax, images[i], f"{label} {probabilities[i, predicted[i]]:.2f}")
        fig.axes[c * (correct + mistakes)].text(
            -0.15, 0.5, name, transform=fig.axes[c * (correct + mistakes)].transAxes,
            ha="right", va="center", fontsize=9,
        )  # fmt: skip
    fig.suptitle(f"right (left {correct}) and the most confident mistakes (right {mistakes})")
    return fig


def _message(text: str) -> Figure:
    fig = Figure(figsize=(6, 2))
    fig.text(0.5, 0.5, text, ha="center", va="center")
    return fig
