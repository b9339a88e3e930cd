"""`python -m lenet_jax.predict --workdir DIR [--checkpoint best|latest|STEP] [--json] IMAGE...`.

Classifies image files with a trained run: per image, the predicted class and the top-3
softmax probabilities (`--json`: one JSON object per line instead). Each image is made
to look like the run's dataset: grayscale 28x28 for one-channel datasets (Fashion-MNIST,
MNIST), RGB 32x32 for three-channel ones (CIFAR-10); a line says when an image had to be
converted or resized (stretched, aspect not kept: crop to a square first for best results).

Fashion-MNIST items are light on a black background. A photo of a dark item on a white
background should be inverted by hand first; this tool does not guess, since a wrong
guess would silently flip a correct image.

An unreadable or missing file gets one `error:` line on stderr while the others are still
classified; the exit status is then 1.

A population (`config.num_replicas`) predicts as an ensemble (averaged probabilities), or
as one replica with `--replica K`; a run with an EMA predicts with it unless
`--weights=raw`.
"""

import json
import sys

import numpy as np
from absl import app, flags, logging
from PIL import Image, UnidentifiedImageError

from lenet_jax import cli
from lenet_jax.errors import UserError
from lenet_jax.report.inference import combined_logits, load_run, predict_images, softmax
from lenet_jax.training.results import Snapshot

TOP_K = 3
EXIT_SOME_FAILED = 1


def load_image(path: str, image_shape: tuple[int, int, int]) -> tuple[np.ndarray, list[str]]:
    """The image at `path` as uint8 HxWxC of `image_shape`, and notes on what was changed.

    Raises UserError (naming the file) if it is missing or not an image PIL can read.
    """
    height, width, channels = image_shape
    if channels not in (1, 3):
        raise ValueError(f"image_shape {image_shape}: expected 1 or 3 channels")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened.copy()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except PermissionError as e:
        raise UserError(f"{path}: {e.strerror.lower()}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    notes = []
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        notes.append(f"converted {image.mode} -> {'grayscale' if mode == 'L' else 'RGB'}")
        image = image.convert(mode)
    if image.size != (width, height):
        notes.append(f"resized {image.width}x{image.height} -> {width}x{height}")
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    array = np.asarray(image, np.uint8)
    return array.reshape(height, width, channels), notes


def classify(run: Snapshot, images: np.ndarray, replica: int | None = None) -> np.ndarray:
    """Class probabilities (N, classes) for uint8 NHWC `images`: a population's ensemble's,
    or replica `replica`'s."""
    logits = combined_logits(np.asarray(predict_images(run, images), np.float64), replica)
    return softmax(logits)


def top_k(probabilities: np.ndarray, class_names, k: int = TOP_K) -> list[tuple[str, float]]:
    """The `k` most probable (class name, probability) pairs, most probable first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(class_names[i], float(probabilities[i])) for i in order]


def format_result(
    path: str, top: list[tuple[str, float]], notes: list[str], *, as_json: bool
) -> str:
    if as_json:
        ranked = [{"class": name, "probability": round(p, 6)} for name, p in top]
        return json.dumps({"path": path, "class": top[0][0], "top": ranked, "notes": notes})
    ranked = ", ".join(f"{name} {p:.3f}" for name, p in top)
    return "".join(f"{path}: {note}\n" for note in notes) + f"{path}: {top[0][0]}  ({ranked})"


def predict_files(
    run: Snapshot, paths: list[str], *, as_json: bool = False, replica: int | None = None
) -> int:
    """Prints a result per readable file and an error line per other; returns the exit code."""
    loaded, failed = [], 0
    for path in paths:
        try:
            loaded.append((path, *load_image(path, run.dataset.image_shape)))
        except UserError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed += 1
    if loaded:
        probabilities = classify(run, np.stack([image for _, image, _ in loaded]), replica)
        for (path, _, notes), p in zip(loaded, probabilities, strict=True):
            print(format_result(path, top_k(p, run.dataset.class_names), notes, as_json=as_json))
    sys.stdout.flush()
    return EXIT_SOME_FAILED if failed else 0


def define_flags() -> None:
    """Defined only when run as a program: absl's flag registry is global, and `evaluate`
    defines the same --workdir, so defining them on import would clash in tests."""
    flags.DEFINE_string("workdir", None, "A training run's workdir.", required=True)
    flags.DEFINE_string("checkpoint", "best", "latest, best, or a step number.")
    flags.DEFINE_bool("json", False, "Print one JSON object per image.")
    flags.DEFINE_enum(
        "weights",
        "auto",
        ["auto", "ema", "raw"],
        "The EMA's parameters or the raw ones; auto: the EMA's where the run keeps one.",
    )
    flags.DEFINE_integer(
        "replica", None, "A population's replica to predict with (default: the ensemble)."
    )


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("give one or more image files after the flags")
    logging.set_verbosity(logging.ERROR)  # keeps stderr to one line per failed image
    args = flags.FLAGS
    with cli.user_errors_as_one_line():
        run = load_run(args.workdir, args.checkpoint, args.weights)
        if args.replica is not None and run.run.num_replicas == 1:
            raise UserError(f"--replica={args.replica}: the run trained one model (no replicas)")
        code = predict_files(run, argv[1:], as_json=args.json, replica=args.replica)
    sys.exit(code)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
