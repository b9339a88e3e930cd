"""LeNet-5 as in d2l (sigmoid + average pooling) and its modern ReLU + max-pool variant."""

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from lenet_jax.ops import layers


class LeNet(nn.Module):
    """conv 6@5x5 pad 2 -> pool -> conv 16@5x5 -> pool -> dense 120 -> 84 -> classes.

    With the d2l defaults (sigmoid, average pooling) it has 61,706 parameters for 10 classes.
    """

    num_classes: int = 10
    activation: str = "sigmoid"
    pooling: str = "avg"
    dropout_rate: float = 0.0
    kernel_init: str = "lecun_normal"
    dtype: Any = jnp.float32  # of the activations; parameters stay float32
    conv_impl: str = "auto"  # auto | xla | band (lenet_jax.ops.band_conv)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        act = layers.activation(self.activation)
        init = layers.kernel_init(self.kernel_init)
        x = act(self._conv(6, padding=2, kernel_init=init)(x))
        x = layers.pool(x, self.pooling)
        x = act(self._conv(16, padding="VALID", kernel_init=init)(x))
        x = layers.pool(x, self.pooling)
        x = x.reshape((x.shape[0], -1))
        x = act(nn.Dense(120, kernel_init=init, dtype=self.dtype)(x))
        x = act(nn.Dense(84, kernel_init=init, dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, kernel_init=init, dtype=self.dtype)(x)

    def _conv(self, features: int, **kwargs) -> nn.Conv:
        return layers.conv(features, (5, 5), impl=self.conv_impl, dtype=self.dtype, **kwargs)
