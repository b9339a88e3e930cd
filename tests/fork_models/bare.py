"""The plainest modules: no mode at all and no `num_classes` field (ten outputs, fixed),
and small breakages of the contract."""

import jax
from flax import linen as nn


class Bare(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(10)(nn.relu(nn.Dense(64)(x)))


class Broken(nn.Module):
    """Fails inside its train-mode call, as a fork's bug would."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.Dense(10)(x.reshape((x.shape[0], -1)))
        if train:
            x = x @ x  # (batch, 10) @ (batch, 10): a shape error
        return x


class NoGradient(nn.Module):
    """Runs forward, but reverse mode cannot pass its `while_loop`: the gradient fails."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = nn.Dense(10)(x.reshape((x.shape[0], -1)))
        return jax.lax.while_loop(lambda c: c[1] < 2, lambda c: (c[0] * 0.5, c[1] + 1), (x, 0))[0]
