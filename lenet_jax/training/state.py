"""The train state: everything a step reads and writes, and all a checkpoint must hold."""

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from lenet_jax.models.contract import Model
from lenet_jax.models.linen_model import as_model


class TrainState(struct.PyTreeNode):
    """Plain data (no functions), so orbax saves and restores it as a pytree."""

    step: jax.Array
    params: Any
    opt_state: optax.OptState
    batch_stats: Any  # BatchNorm running statistics; {} for models without them
    # The parameters' exponential moving average (config.ema_decay); None when off, which
    # leaves the state's (and a checkpoint's) layout as without it.
    ema_params: Any = None


def create_train_state(
    model: Model,
    tx: optax.GradientTransformation,
    key: jax.Array,
    images: tuple[int, ...] | jax.Array,
    *,
    ema: bool = False,
) -> TrainState:
    """Step 0 from the model's init on `images` (normalised float NHWC, for a model whose
    init reads its data), or on one blank image when given an image shape."""
    if isinstance(images, tuple | list):
        images = jnp.zeros((1, *images), jnp.float32)
    params, batch_stats = as_model(model).init(key, images)
    return state_from(params, batch_stats, tx, ema=ema)


def state_from(params, batch_stats, tx: optax.GradientTransformation, *, ema: bool) -> TrainState:
    """Step 0 at `params`: a fresh optimizer state, and the EMA (if kept) starting there."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        batch_stats=batch_stats,
        ema_params=jax.tree.map(jnp.copy, params) if ema else None,
    )
