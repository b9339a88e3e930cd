"""The train state: everything a step reads and writes, and all a checkpoint must hold."""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from lenet_jax.models.contract import Model, as_model


class TrainState(struct.PyTreeNode):
    """Plain data (no functions), so orbax saves and restores it as a pytree."""

    step: jax.Array
    params: Any
    opt_state: optax.OptState
    batch_stats: Any  # BatchNorm running statistics; {} for models without them


def create_train_state(
    model: Model, tx: optax.GradientTransformation, key: jax.Array, image_shape: tuple[int, ...]
) -> TrainState:
    params, batch_stats = as_model(model).init(key, jnp.zeros((1, *image_shape), jnp.float32))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        batch_stats=batch_stats,
    )
