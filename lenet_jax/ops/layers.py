"""Layers shared by the models: convolution, pooling, activations and initialisers by name.

Models name these by string so configs can choose them, and so a faster formulation of
an op lives in one place that every model uses.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from lenet_jax.ops import conv as conv_impls

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sigmoid": nn.sigmoid,
    "relu": nn.relu,
    "tanh": jnp.tanh,
}

KERNEL_INITS = {
    "lecun_normal": nn.initializers.lecun_normal(),
    "glorot_uniform": nn.initializers.glorot_uniform(),
    "he_normal": nn.initializers.he_normal(),
}


def batch_norm(*, train: bool, momentum: float, axis_name: str | None, **kwargs) -> nn.BatchNorm:
    """flax's BatchNorm whose statistics average over `axis_name` where the run names one:
    under pmap, the device axis, so they are the global batch's as under jit sharding."""
    return nn.BatchNorm(
        use_running_average=not train, momentum=momentum, axis_name=axis_name, **kwargs
    )


def _lookup(table: dict, kind: str, name: str):
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; known: {sorted(table)}")
    return table[name]


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    return _lookup(ACTIVATIONS, "activation", name)


def kernel_init(name: str):
    return _lookup(KERNEL_INITS, "kernel_init", name)


def pool(x: jax.Array, kind: str, window: int = 2) -> jax.Array:
    """Non-overlapping `window`x`window` pooling over NHWC images ("avg" or "max")."""
    if kind == "avg":
        return nn.avg_pool(x, (window, window), strides=(window, window))
    if kind == "max":
        n, h, w, c = x.shape
        if h % window or w % window:
            return nn.max_pool(x, (window, window), strides=(window, window))
        # A reshape and a max over the window axes: on XLA:CPU its backward beats
        # reduce-window's select-and-scatter (the README's performance section).
        return x.reshape(n, h // window, window, w // window, window, c).max(axis=(2, 4))
    raise ValueError(f"unknown pooling {kind!r}; known: ['avg', 'max']")


class Pool(nn.Module):
    """`pool` as a module: it holds no parameters, but flax records its output among a
    model's intermediates, so the look inside (`lenet_jax.inspect`) can draw pooling layers
    (LeNet's S2 and S4) beside the convolutions."""

    kind: str
    window: int = 2

    def __call__(self, x: jax.Array) -> jax.Array:
        return pool(x, self.kind, self.window)


def conv(features: int, kernel_size: tuple[int, int], *, impl: str = "auto", **kwargs) -> nn.Conv:
    """nn.Conv running the convolution `impl` chooses (`lenet_jax.ops.conv.CONV_IMPLS`)."""
    return nn.Conv(
        features, kernel_size, conv_general_dilated=conv_impls.conv_general_dilated(impl), **kwargs
    )
