"""`python -m lenet_jax.inspect --workdir DIR [--checkpoint best|latest|STEP] [IMAGE ...]`.

Draws what a trained network learned and where it looks, into DIR/plots/: filters.png
(the kernels), feature_maps.png (one image through every conv and pooling layer),
saliency.png (input gradients and Grad-CAM for the predicted and the true class),
embedding.png (the classifier's features of the test split, by PCA) and classes.png (per
class, right answers and the most confident mistakes), the run's curves, confusion matrix
and mistakes as `evaluate` draws them; then DIR/report.html, and prints each path.
Without IMAGE files it looks at test images: the first of each class and the most
confident mistakes. `--layer` picks Grad-CAM's layer (default: the last spatial one);
`--member` one model of a population (default: the best on the test split).

Every picture is drawn before any is written: bad input (an unreadable image, a workdir
with no checkpoint, a layer that does not exist) is one line and leaves DIR as it was. A
picture the model's structure does not allow (a fork whose layers cannot be found) is left
out, with one line saying which and why.
"""

import os
import sys

import numpy as np
from absl import flags, logging

from lenet_jax import cli
from lenet_jax.errors import UserError, first_line

SALIENCY_ROWS = 6  # images in saliency.png: the first classes' and the top mistakes


def define_flags() -> None:
    """Defined only when run as a program (as `predict` does: absl's registry is global)."""
    flags.DEFINE_string("workdir", None, "A training run's workdir.", required=True)
    flags.DEFINE_string("checkpoint", "best", "latest, best, or a step number.")
    flags.DEFINE_enum("weights", "auto", ["auto", "ema", "raw"], "EMA or raw parameters.")
    flags.DEFINE_string("member", "best", "A population's member: best, or its index.")
    flags.DEFINE_string("layer", None, "Grad-CAM's layer (default: the last spatial one).")


def chosen_images(snapshot, paths: list[str], test_logits: np.ndarray):
    """(images, labels) for feature_maps.png and saliency.png: the files, loaded as
    `predict` loads them (labels: -1, unknown), or the test images worth a look, picked
    from the test split's `test_logits`."""
    from lenet_jax.predict import load_image
    from lenet_jax.report import inside
    from lenet_jax.report.inference import softmax

    if paths:
        images = np.stack([load_image(path, snapshot.dataset.image_shape)[0] for path in paths])
        return images, np.full(len(images), -1)
    test_images, labels = snapshot.dataset.split("test")
    picked = inside.chosen_examples(labels, softmax(np.asarray(test_logits, np.float64)))
    classes = len(np.unique(labels))
    shown = picked[: SALIENCY_ROWS // 2] + picked[classes:][: SALIENCY_ROWS // 2]
    return np.stack([test_images[i] for i in shown]), labels[shown]  # a streamed split: by index


def draw(
    snapshot, images: np.ndarray, labels: np.ndarray, layer: str | None, test_logits: np.ndarray
) -> dict:
    """{name: figure} for every picture the model allows; one `note:` line per other."""
    from lenet_jax.report import inside, inspect

    probed = inside.look(snapshot, images)
    labels = np.where(labels >= 0, labels, probed.logits.argmax(-1))
    if layer is not None:
        inside.layer_named(probed, layer)  # a bad name: one line
    makers = {
        "filters": lambda: inspect.filters(snapshot),
        "feature_maps": lambda: inspect.feature_maps(snapshot, images[0]),
        "saliency": lambda: inspect.saliency(snapshot, images, labels, layer=layer),
        "embedding": lambda: inspect.embedding(snapshot),
        "classes": lambda: inspect.classes(snapshot, logits=test_logits),
    }
    figures = {}
    for name, make in makers.items():
        try:
            figures[name] = make()
        except UserError as e:
            print(f"note: {name}.png not drawn: {e}", file=sys.stderr, flush=True)
        except Exception as e:  # inside a fork's own module: the other pictures still come
            reason = f"{type(e).__name__}: {first_line(e, 200)}"
            print(f"note: {name}.png not drawn: {reason}", file=sys.stderr, flush=True)
    return figures


def inspect_workdir(
    workdir: str,
    paths: list[str] = (),
    *,
    checkpoint: str = "best",
    weights: str = "auto",
    member: str = "best",
    layer: str | None = None,
) -> list[str]:
    """Draws every picture for the run in `workdir`, then writes them and report.html;
    returns the paths written. Nothing is written when anything fails before."""
    from lenet_jax.report import inside, page, plots
    from lenet_jax.report.inference import load_run, predict_split

    snapshot = inside.member(load_run(workdir, checkpoint, weights), member)
    test_logits = predict_split(snapshot, "test")[0]  # once, for the picks and the plots
    images, labels = chosen_images(snapshot, list(paths), test_logits)
    figures = draw(snapshot, images, labels, layer, test_logits)
    directory = os.path.join(workdir, page.PLOTS_DIR)
    os.makedirs(directory, exist_ok=True)
    written = [
        plots.save_figure(figure, os.path.join(directory, f"{name}.png"))
        for name, figure in figures.items()
    ]
    # The run's curves, confusion and mistakes too: the report shows them beside these.
    written += plots.write_run_plots(workdir, snapshot, test_logits.argmax(-1)).values()
    return [*written, page.write_report(workdir)]


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.ERROR)
    args = flags.FLAGS
    with cli.user_errors_as_one_line():
        written = inspect_workdir(
            args.workdir,
            argv[1:],
            checkpoint=args.checkpoint,
            weights=args.weights,
            member=args.member,
            layer=args.layer,
        )
    print("\n".join(written), flush=True)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
