"""flax's imagenet style: a family of sizes as `functools.partial`s, and a BatchNorm that
averages its statistics across devices over `axis_name="batch"`."""

import functools
from collections.abc import Sequence

import jax
from flax import linen as nn


class ResNetish(nn.Module):
    stage_sizes: Sequence[int]
    num_classes: int = 10
    num_filters: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        norm = functools.partial(
            nn.BatchNorm, use_running_average=not train, momentum=0.9, axis_name="batch"
        )
        x = nn.relu(norm()(nn.Conv(self.num_filters, (3, 3), use_bias=False)(x)))
        for i, size in enumerate(self.stage_sizes):
            for _ in range(size):
                y = nn.Conv(self.num_filters * 2**i, (3, 3), use_bias=False)(x)
                y = norm()(y)
                x = nn.relu(y + x) if y.shape == x.shape else nn.relu(y)
            x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(self.num_classes)(x.mean(axis=(1, 2)))


ResNetish2 = functools.partial(ResNetish, stage_sizes=[1, 1])
