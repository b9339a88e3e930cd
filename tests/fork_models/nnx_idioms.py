"""Flax NNX written the ways flax's current examples and tutorials write it, one idiom per
module (written here, not copied): the contract must train each unchanged."""

from functools import partial

import jax
from flax import nnx


class CallRngsCNN(nnx.Module):
    """`nnx.Dropout(rate)` built without rngs; `rngs` a required argument of `__call__`
    (flax's examples/mnist); the constructor takes `rngs` by keyword."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 8, kernel_size=(3, 3), rngs=rngs)
        self.dropout = nnx.Dropout(0.25)
        self.out = nnx.Linear(8 * 14 * 14, 10, rngs=rngs)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs) -> jax.Array:
        x = nnx.max_pool(nnx.relu(self.conv(x)), window_shape=(2, 2), strides=(2, 2))
        x = self.dropout(x.reshape((x.shape[0], -1)), rngs=rngs)
        return self.out(x)


class OptionalRngsCNN(nnx.Module):
    """`rngs: nnx.Rngs | None = None` at the call (the NNX MNIST tutorial's shape), a
    `partial` pooling attribute, and `num_classes` then `rngs` taken positionally."""

    def __init__(self, num_classes: int, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 8, kernel_size=(3, 3), rngs=rngs)
        self.pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
        self.hidden = nnx.Linear(8 * 14 * 14, 32, rngs=rngs)
        self.dropout = nnx.Dropout(rate=0.3)
        self.out = nnx.Linear(32, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        x = self.pool(nnx.relu(self.conv(x))).reshape((x.shape[0], -1))
        return self.out(self.dropout(nnx.relu(self.hidden(x)), rngs=rngs))


class ModeSwitchBN(nnx.Module):
    """No mode argument at all: `model.train()` / `model.eval()` switch its BatchNorm and
    its Dropout (built with rngs), whose statistics must be saved and restored."""

    def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 8, kernel_size=(3, 3), use_bias=False, rngs=rngs)
        self.norm = nnx.BatchNorm(8, momentum=0.9, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(8 * 14 * 14, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.norm(self.conv(x)))
        x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
        return self.out(self.dropout(x.reshape((x.shape[0], -1))))


def sequential_cnn(num_classes: int = 10, *, rngs: nnx.Rngs) -> nnx.Sequential:
    """A function returning `nnx.Sequential`: layers and plain functions in a row."""
    return nnx.Sequential(
        nnx.Conv(1, 8, kernel_size=(3, 3), rngs=rngs),
        nnx.relu,
        partial(nnx.max_pool, window_shape=(2, 2), strides=(2, 2)),
        lambda x: x.reshape((x.shape[0], -1)),
        nnx.Dropout(0.2, rngs=rngs),
        nnx.Linear(8 * 14 * 14, num_classes, rngs=rngs),
    )


class NoRngsAnywhere(nnx.Module):
    """Broken on purpose: its Dropout has no rngs, and its call takes none either."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.dropout = nnx.Dropout(0.5)
        self.out = nnx.Linear(28 * 28, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.dropout(x.reshape((x.shape[0], -1))))


class NeedsAMask(nnx.Module):
    """Broken on purpose: its call needs an argument the toolkit cannot give."""

    def __init__(self, *, rngs: nnx.Rngs):
        self.out = nnx.Linear(28 * 28, 10, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        return self.out(x.reshape((x.shape[0], -1))) * mask
