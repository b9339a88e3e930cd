"""Modules that run but break what a run relies on, each in one way: the contract kit
(`lenet_jax.testing.check_model`) must name what is wrong."""

import jax
from flax import linen as nn


class NoisyEval(nn.Module):
    """Dropout that stays on in eval mode: its predictions depend on the key."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = nn.Dense(10)(x.reshape((x.shape[0], -1)))
        return nn.Dropout(0.5, deterministic=False)(x)


class Frozen(nn.Module):
    """Its gradients never reach its parameters: it cannot learn."""

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        return jax.lax.stop_gradient(nn.Dense(10)(x.reshape((x.shape[0], -1))))
