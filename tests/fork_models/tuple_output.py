"""big_vision's style: the model returns `(logits, extras)`; `train` is a call keyword."""

import jax
from flax import linen as nn


class TinyViTish(nn.Module):
    num_classes: int = 10
    patch: int = 7
    dim: int = 16

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        tokens = nn.Conv(self.dim, (self.patch, self.patch), strides=self.patch)(x)
        tokens = tokens.reshape((tokens.shape[0], -1, self.dim))
        tokens = tokens + nn.Dense(self.dim)(nn.LayerNorm()(tokens))
        pre_logits = tokens.mean(axis=1)
        pre_logits = nn.Dropout(0.1, deterministic=not train)(pre_logits)
        logits = nn.Dense(self.num_classes)(pre_logits)
        return logits, {"pre_logits": pre_logits}
