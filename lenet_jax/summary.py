"""`python -m lenet_jax.summary --config configs/fashion.py[:arg]`: a model's layers at a glance.

Prints d2l-style lines ("Conv_0 output shape: (1, 28, 28, 6)"), then flax's table of
each layer's inputs, outputs and parameters, then the total parameter count. The input
shape comes from the dataset registry rather than from loading the data, so the summary
is instant; `--input_shape` covers any other dataset. The model is built and checked
through the same contract as in training, so a fork's module fails here as it would there.
"""

import shutil
import sys

import jax
import jax.numpy as jnp
import ml_collections
from absl import app, flags, logging
from flax import linen as nn
from flax import nnx

from lenet_jax import cli, prng
from lenet_jax.data import get_spec
from lenet_jax.errors import UserError
from lenet_jax.models import LinenModel, build_model
from lenet_jax.training.config_checks import INT_LIMIT


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
    try:
        return get_spec(config.dataset, config.get("tfds_data_dir", "")).image_shape
    except UserError as e:
        raise UserError(
            f"config.dataset={config.dataset!r}: image shape unknown here ({e}); "
            "pass --input_shape=H,W,C"
        ) from None


def layer_shapes(model: nn.Module, x: jax.Array, **kwargs) -> list[tuple[str, object]]:
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
        jax.eval_shape(lambda: model.init(prng.key(0), x, **kwargs))
    return shapes


def count_values(tree) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(tree))


def summary(
    config: ml_collections.ConfigDict,
    shape: tuple[int, int, int],
    *,
    num_classes: int = 10,
    width: int | None = None,
) -> str:
    """The whole report as text; `width` (terminal columns) also turns on colour."""
    model = build_model(
        config.model, num_classes=num_classes, passed=tuple(config.get("model_fields_passed", ()))
    )
    model.check(shape, num_classes)
    x = jnp.zeros((1, *shape), jnp.float32)
    lines = [
        f"{config.model.name} on {config.dataset}: input {'x'.join(map(str, shape))}, "
        f"{num_classes} classes",
        "",
        f"input shape: {tuple(x.shape)}",
    ]
    if isinstance(model, LinenModel):
        module, kwargs = model.module_for(False), model.call_kwargs(False)
        lines += [f"{path} output shape: {out}" for path, out in layer_shapes(module, x, **kwargs)]
        console = {
            "force_terminal": width is not None,
            "width": width or 120,
            "no_color": not width,
        }
        table = module.tabulate(prng.key(0), x, **kwargs, console_kwargs=console)
    else:
        table = nnx.tabulate(model.module, x, console_kwargs={"width": width or 120})
    lines += [line.rstrip() for line in table.rstrip().splitlines()]
    params, batch_stats = jax.eval_shape(model.init, prng.key(0), x)
    lines += ["", f"total parameters: {count_values(params):,}"]
    if jax.tree.leaves(batch_stats):
        lines.append(f"batch_stats: {count_values(batch_stats):,} values (not trained)")
    return "\n".join(lines)


def define_flags() -> None:
    """Defined only when run as a program: absl's flag registry is global, and `train`
    defines the same --config, so defining them on import would clash in tests."""
    cli.define_config_flag()
    flags.mark_flag_as_required("config")
    flags.DEFINE_list("input_shape", None, "H,W,C of one image, for other datasets: 64,64,3.")
    flags.DEFINE_integer(
        "num_classes", 10, "Classes of the output layer.", lower_bound=1, upper_bound=INT_LIMIT
    )


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    args = flags.FLAGS
    width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else None
    with cli.user_errors_as_one_line():
        config = cli.config_or_error(flags.FLAGS["config"])
        shape = image_shape(config, args.input_shape)
        text = summary(config, shape, num_classes=args.num_classes, width=width)
    print(text, flush=True)


if __name__ == "__main__":
    define_flags()
    cli.run(main)
