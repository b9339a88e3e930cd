"""A model that returns an auxiliary loss beside its logits, as mixture-of-experts and
deep-supervision models do: `(logits, {"aux_loss": x})`. Here the loss is an activity
penalty on the features, so only the layers before them feel it."""

import jax
import jax.numpy as jnp
from flax import linen as nn


class ActivityPenaltyCNN(nn.Module):
    num_classes: int = 10
    features: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False):
        x = nn.relu(nn.Conv(self.features, (3, 3), strides=2, name="conv")(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        features = x.reshape((x.shape[0], -1))
        logits = nn.Dense(self.num_classes, name="head")(features)
        return logits, {"aux_loss": jnp.mean(jnp.square(features)), "features": features}
