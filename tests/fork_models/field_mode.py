"""d2l's style: the mode is a module field (`training`), not an argument of `__call__`."""

import jax
from flax import linen as nn


class FieldModeLeNet(nn.Module):
    num_classes: int = 10
    training: bool = False
    width: int = 8  # a fork's own field, set with --config.model.width=...

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(nn.Conv(self.width, (5, 5), padding=2)(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dropout(0.5, deterministic=not self.training)(nn.relu(nn.Dense(32)(x)))
        return nn.Dense(self.num_classes)(x)
