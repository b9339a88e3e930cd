"""A factory that takes `**kwargs` and returns a linen module built from a named variant, as
big_vision's `Model(num_classes=None, *, variant=None, **kw)` does (written here)."""

import jax
from flax import linen as nn

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
