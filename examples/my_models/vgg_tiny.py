"""A small VGG-style network for 28x28 grayscale images, as in d2l's VGG chapter, shrunk.

Two VGG blocks (conv 3x3 -> conv 3x3 -> 2x2 max-pool) then a dense head: 28 -> 14 -> 7.
With 10 classes it has 218,490 parameters (LeNet-5: 61,706). Train it without touching
the package, with the stock config (its LeNet-only fields are dropped with a warning):

  PYTHONPATH=examples python -m lenet_jax.train --config configs/fashion.py \\
      --workdir runs/vgg --config.model.name=my_models.vgg_tiny:VGGTiny
"""

import jax
from flax import linen as nn


class VGGTiny(nn.Module):
    """vgg block 16 -> vgg block 32 -> dense 128 -> dropout -> classes (ReLU throughout).

    Every field can be set from the config as `config.model.<field>`, e.g.
    `--config.model.block_channels='(32, 64)'`.
    """

    num_classes: int = 10
    dropout_rate: float = 0.0
    block_channels: tuple[int, ...] = (16, 32)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        for channels in self.block_channels:
            x = vgg_block(x, channels, convs=2)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(128)(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x)


def vgg_block(x: jax.Array, channels: int, *, convs: int) -> jax.Array:
    """`convs` 3x3 convolutions (same padding, ReLU), then a 2x2 max-pool that halves H, W.

    A plain function called inside the parent's `nn.compact`, so its layers are named
    Conv_0, Conv_1, ... in the parent, as if written inline.
    """
    for _ in range(convs):
        x = nn.relu(nn.Conv(channels, (3, 3), padding=1)(x))
    return nn.max_pool(x, (2, 2), strides=(2, 2))
