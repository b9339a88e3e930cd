"""How the contract calls a module: the mode keyword its `__call__` names (`train`,
`training`, or the inverted `deterministic`), the parameters it takes, each RNG stream's
key from the step's, and a named axis bound at size 1 where no device axis exists."""

import functools
import inspect
import zlib
from collections.abc import Callable

import jax

MODE_NAMES = ("train", "training")  # True in train mode
INVERTED_MODE_NAMES = ("deterministic",)  # True in eval mode


def stream_key(base: jax.Array, stream: str) -> jax.Array:
    """The key of RNG stream `stream` in a step: `base` itself for "dropout", else folded.

    A stable hash of the name (not Python's salted `hash`) keeps it the same across runs.
    """
    if stream == "dropout":
        return base
    return jax.random.fold_in(base, zlib.crc32(stream.encode()) & 0x7FFFFFFF)


def bind_axis(fn: Callable, axis: str) -> Callable:
    """`fn` under a named axis of size 1: its collectives over `axis` become identities."""

    @functools.wraps(fn)
    def bound(*args):
        out = jax.vmap(fn, in_axes=None, axis_size=1, axis_name=axis)(*args)
        return jax.tree.map(lambda x: x[0], out)

    return bound


def mode_of_call(fn) -> tuple[str | None, bool]:
    """(keyword, inverted) of a `__call__`'s mode keyword, or (None, False) if it has none."""
    parameters = parameters_of(fn)
    for name in MODE_NAMES + INVERTED_MODE_NAMES:
        if name in parameters:
            return name, name in INVERTED_MODE_NAMES
    return None, False


def parameters_of(fn) -> dict[str, inspect.Parameter]:
    """`fn`'s parameters by name; none where Python cannot read its signature."""
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}
