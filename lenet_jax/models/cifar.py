"""A small two-conv CNN for 32x32 colour images (CIFAR-10), with optional BatchNorm.

Plain, it has 545,098 parameters for 10 classes. With `batch_norm=True` the running
statistics live in the "batch_stats" collection, which the train step must mark mutable.
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from lenet_jax.ops import layers


class CifarCNN(nn.Module):
    """conv 32@3x3 -> pool -> conv 64@3x3 -> pool -> dense 128 -> classes (ReLU, max-pool)."""

    num_classes: int = 10
    dropout_rate: float = 0.0
    batch_norm: bool = False
    dtype: Any = jnp.float32  # of the activations; parameters stay float32
    conv_impl: str = "auto"  # a name from lenet_jax.ops.conv.CONV_IMPLS
    # Filled in by the run: the device axis the BatchNorm statistics average over under pmap.
    batch_axis: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        for features in (32, 64):
            x = self._conv_block(x, features, train=train)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(128, dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype)(x)

    def _conv_block(self, x: jax.Array, features: int, *, train: bool) -> jax.Array:
        # BatchNorm's own shift makes a conv bias redundant.
        x = layers.conv(
            features,
            (3, 3),
            impl=self.conv_impl,
            padding=1,
            use_bias=not self.batch_norm,
            dtype=self.dtype,
        )(x)
        if self.batch_norm:
            x = layers.batch_norm(
                train=train, momentum=0.9, axis_name=self.batch_axis, dtype=self.dtype
            )(x)
        return layers.Pool("max")(nn.relu(x))
