"""`python -m lenet_jax.summary --config configs/fashion.py[:arg]`: a model's layers at a glance.

Prints d2l-style lines ("Conv_0 output shape: (1, 28, 28, 6)"), then flax's table of
each layer's inputs, outputs and parameters, then the total parameter count. The input
shape comes from a small table of the known datasets rather than from loading the data,
so the summary is instant; `--input_shape` covers any other dataset.
"""

import shutil
import sys

import jax
import jax.numpy as jnp
import ml_collections
from absl import app, flags, logging
from flax import linen as nn
from ml_collections import config_flags

from lenet_jax import cli
from lenet_jax.errors import UserError
from lenet_jax.models import build_model

IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "fashion_mnist": (28, 28, 1),
    "mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
}


def image_shape(config: ml_collections.ConfigDict, override: list[str] | None = None):
    """(H, W, C) for `config.dataset`, or the `--input_shape` override."""
    if override:
        try:
            shape = tuple(int(d) for d in override)
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 1:
            raise UserError(f"--input_shape={','.join(override)}: expected H,W,C, e.g. 28,28,1")
        return shape
    if config.dataset not in IMAGE_SHAPES:
        raise UserError(
            f"config.dataset={config.dataset!r}: image shape unknown here; known: "
            f"{sorted(IMAGE_SHAPES)}, or pass --input_shape=H,W,C"
        )
    return IMAGE_SHAPES[config.dataset]


def layer_shapes(model: nn.Module, x: jax.Array) -> list[tuple[str, object]]:
    """(submodule path, output shape) per submodule call, innermost first, as traced.

    Shapes come from an abstract `init` (`jax.eval_shape`), so nothing is computed.
    """
    shapes = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and context.module.path:
            shapes.append(("/".join(context.module.path), jax.tree.map(jnp.shape, out)))
        return out

    with nn.intercept_methods(record):
        jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    return shapes


def count_variables(model: nn.Module, x: jax.Array) -> dict[str, int]:
    """Values per variable collection ("params", and e.g. "batch_stats"), from shapes only."""
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    return {
        name: sum(leaf.size for leaf in jax.tree.leaves(tree)) for name, tree in variables.items()
    }


def summary(
    config: ml_collections.ConfigDict,
    shape: tuple[int, int, int],
    *,
    num_classes: int = 10,
    width: int | None = None,
) -> str:
    """The whole report as text; `width` (terminal columns) also turns on colour."""
    model = build_model(config.model, num_classes=num_classes)
    x = jnp.zeros((1, *shape), jnp.float32)
    lines = [
        f"{config.model.name} on {config.dataset}: input {'x'.join(map(str, shape))}, "
        f"{num_classes} classes",
        "",
        f"input shape: {tuple(x.shape)}",
    ]
    lines += [f"{path} output shape: {out}" for path, out in layer_shapes(model, x)]
    console = {"force_terminal": width is not None, "width": width or 120, "no_color": not width}
    table = model.tabulate(jax.random.key(0), x, train=False, console_kwargs=console)
    lines += [line.rstrip() for line in table.rstrip().splitlines()]
    counts = count_variables(model, x)
    lines += ["", f"total parameters: {counts.pop('params', 0):,}"]
    lines += [f"{name}: {n:,} values (not trained)" for name, n in counts.items()]
    return "\n".join(lines)


def define_flags() -> None:
    """Defined only when run as a program: absl's flag registry is global, and `train`
    defines the same --config, so defining them on import would clash in tests."""
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Config file, optionally FILE:arg (e.g. configs/fashion.py:smoke).",
        lock_config=True,
    )
    flags.mark_flag_as_required("config")
    flags.DEFINE_list("input_shape", None, "H,W,C of one image, for other datasets: 64,64,3.")
    flags.DEFINE_integer("num_classes", 10, "Classes of the output layer.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    args = flags.FLAGS
    width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else None
    with cli.user_errors_as_one_line():
        shape = image_shape(args.config, args.input_shape)
        text = summary(args.config, shape, num_classes=args.num_classes, width=width)
    print(text, flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
