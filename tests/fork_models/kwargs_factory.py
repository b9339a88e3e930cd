"""Factories that take `**kwargs`: one returns a linen module built from a named variant, as
big_vision's `Model(num_classes=None, *, variant=None, **kw)` does (written here); one
builds an NNX module."""

import jax
from flax import linen as nn
from flax import nnx

VARIANTS = {"s": {"width": 8, "depth": 1}, "m": {"width": 16, "depth": 2}}


class _Net(nn.Module):
    num_classes: int = 10
    width: int = 8
    depth: int = 1
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        for _ in range(self.depth):
            x = nn.relu(nn.Conv(self.width, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = nn.Dropout(self.dropout, deterministic=not train)(x.reshape((x.shape[0], -1)))
        return nn.Dense(self.num_classes)(x)


def Model(num_classes=None, *, variant=None, **kw):  # noqa: N802 (big_vision's name)
    return _Net(num_classes=num_classes, **{**VARIANTS.get(variant, {}), **kw})


class _NnxNet(nnx.Module):
    def __init__(self, num_classes: int = 10, features: tuple = (8, 16), *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, features[0], (3, 3), strides=2, rngs=rngs)
        self.conv2 = nnx.Conv(features[0], features[1], (3, 3), strides=2, rngs=rngs)
        self.head = nnx.Linear(features[1] * 7 * 7, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.conv2(nnx.relu(self.conv1(x))))
        return self.head(x.reshape((x.shape[0], -1)))


def nnx_model(*, rngs: nnx.Rngs, **kw):
    """An NNX factory with `**kwargs`: what it takes is learnt only by building it."""
    return _NnxNet(rngs=rngs, **kw)
