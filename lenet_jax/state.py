"""The train state: everything a step reads and writes, and all a checkpoint must hold."""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax import struct


class TrainState(struct.PyTreeNode):
    """Plain data (no functions), so orbax saves and restores it as a pytree."""

    step: jax.Array
    params: Any
    opt_state: optax.OptState
    batch_stats: Any  # BatchNorm running statistics; {} for models without them


def create_train_state(
    model: nn.Module, tx: optax.GradientTransformation, key: jax.Array, image_shape: tuple[int, ...]
) -> TrainState:
    variables = model.init(key, jnp.zeros((1, *image_shape), jnp.float32), train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        batch_stats=variables.get("batch_stats", {}),
    )
