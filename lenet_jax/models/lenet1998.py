"""LeNet-5 as published (LeCun, Bottou, Bengio & Haffner, 1998), for 28x28 or 32x32 inputs.

The paper's network reads 32x32 images; MNIST-style 28x28 inputs are zero-padded by 2
on each side so C1 sees the same field it did in the paper. Simplifications:
  * the output layer (F7 here, OUTPUT in the paper) is a plain dense layer, not the
    paper's Euclidean RBF units;
  * C3 connects to all six S2 maps, not the paper's sparse 60-entry connection table;
  * S2/S4 are plain average pools, without the paper's trainable coefficient and bias,
    and tanh is unscaled (the paper used 1.7159 * tanh(2x/3)).
With 10 classes it has 61,706 parameters, the same as d2l's LeNet: C5 over a 5x5 map is
a dense layer over the flattened 16x5x5 features.
"""

import jax
import jax.numpy as jnp
from flax import linen as nn

from lenet_jax.ops import layers

PAPER_SIZE = 32  # the paper's input height and width


class LeNet1998(nn.Module):
    """C1 conv 6@5x5 -> S2 avg-pool -> C3 conv 16@5x5 -> S4 -> C5 conv 120@5x5 -> F6 84 -> F7.

    tanh after C1, C3, C5 and F6; dropout (`dropout_rate`) before the output layer.
    """

    num_classes: int = 10
    dropout_rate: float = 0.0
    kernel_init: str = "lecun_normal"  # a name from lenet_jax.ops.layers.KERNEL_INITS
    conv_impl: str = "auto"  # a name from lenet_jax.ops.conv.CONV_IMPLS

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        init = layers.kernel_init(self.kernel_init)
        x = pad_to_paper_size(x)
        x = jnp.tanh(self._conv(6, "C1")(x))
        x = layers.Pool("avg", name="S2")(x)
        x = jnp.tanh(self._conv(16, "C3")(x))
        x = layers.Pool("avg", name="S4")(x)
        x = jnp.tanh(self._conv(120, "C5")(x))
        x = x.reshape((x.shape[0], -1))  # 1x1x120 on 32x32 inputs
        x = jnp.tanh(nn.Dense(84, kernel_init=init, name="F6")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, kernel_init=init, name="F7")(x)  # the paper's OUTPUT

    def _conv(self, features: int, name: str) -> nn.Conv:
        init = layers.kernel_init(self.kernel_init)
        return layers.conv(
            features, (5, 5), impl=self.conv_impl, padding="VALID", kernel_init=init, name=name
        )


def pad_to_paper_size(x: jax.Array) -> jax.Array:
    """Zero-pads NHWC images smaller than 32x32 up to 32x32, centred; larger ones pass as is."""
    pad_h = max(0, PAPER_SIZE - x.shape[1])
    pad_w = max(0, PAPER_SIZE - x.shape[2])
    if not pad_h and not pad_w:
        return x
    return jnp.pad(
        x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    )
