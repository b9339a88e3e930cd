"""LeNet-5 as in d2l (sigmoid + average pooling) and its modern ReLU + max-pool variant."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from lenet_jax.ops import layers


class LeNet(nn.Module):
    """conv 6@5x5 pad 2 -> pool -> conv 16@5x5 -> pool -> dense 120 -> 84 -> classes.

    With the d2l defaults (sigmoid, average pooling) it has 61,706 parameters for 10 classes.
    `features` and `hidden` set the widths; `batch_norm` normalises each conv's output
    before its activation (the conv then has no bias: BatchNorm's shift replaces it).
    """

    num_classes: int = 10
    activation: str = "sigmoid"
    pooling: str = "avg"
    dropout_rate: float = 0.0
    kernel_init: str = "lecun_normal"
    features: Sequence[int] = (6, 16)  # the two convolutions' output channels
    hidden: Sequence[int] = (120, 84)  # the dense layers before the classifier
    batch_norm: bool = False
    dtype: Any = jnp.float32  # of the activations; parameters stay float32
    conv_impl: str = "auto"  # a name from lenet_jax.ops.conv.CONV_IMPLS
    # Filled in by the run: the device axis the BatchNorm statistics average over under pmap.
    batch_axis: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        act = layers.activation(self.activation)
        init = layers.kernel_init(self.kernel_init)
        for features, padding in zip(self.features, (2, "VALID"), strict=True):
            x = self._conv(features, padding=padding, kernel_init=init)(x)
            if self.batch_norm:
                x = layers.batch_norm(
                    train=train, momentum=0.9, axis_name=self.batch_axis, dtype=self.dtype
                )(x)
            x = layers.Pool(self.pooling)(act(x))
        x = x.reshape((x.shape[0], -1))
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=init, dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, kernel_init=init, dtype=self.dtype)(x)

    def _conv(self, features: int, **kwargs) -> nn.Conv:
        return layers.conv(
            features,
            (5, 5),
            impl=self.conv_impl,
            use_bias=not self.batch_norm,
            dtype=self.dtype,
            **kwargs,
        )
