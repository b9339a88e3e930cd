"""A population of models trained at once: `jax.vmap` over the state, the keys and the data.

With `config.num_replicas` = N > 1 every leaf of the train state but `step` gets a leading
axis of N (the replicas step together, so one step counter serves them all), and replica
r's init, dropout and augmentation keys are the run's keys folded with r. One compiled
step then trains all N: on a CPU whose cores narrow layers leave idle, N models cost far
less than N runs. With N = 1 nothing is vectorised, so a run's state and checkpoints are
exactly those of the single model.
"""

import jax
import jax.numpy as jnp

from lenet_jax.training.state import TrainState

# vmap's axes for a replicated state: the step is shared, everything else has axis 0.
STATE_AXES = TrainState(step=None, params=0, opt_state=0, batch_stats=0, ema_params=0)


def replica_keys(key: jax.Array, num_replicas: int) -> jax.Array:
    """(N,) keys: `key` folded with each replica's index."""
    return jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(num_replicas))


def vectorize_init(create, num_replicas: int):
    """`create(key) -> TrainState` for one model, as `init(keys (N,)) -> replicated state`."""
    if num_replicas == 1:
        return create
    return jax.vmap(create, out_axes=STATE_AXES)


def vectorize_train_step(train_step, num_replicas: int, *, own_data: bool):
    """The train step over all replicas: keys (N,), and with `own_data` images and labels of
    shape (batch, N, ...), replica r training on [:, r] (its own data order); else one batch
    for all. Metric sums come back with a trailing replica axis: (N,) per metric."""
    if num_replicas == 1:
        return train_step
    data = 1 if own_data else None
    return jax.vmap(train_step, in_axes=(STATE_AXES, data, data, 0), out_axes=(STATE_AXES, 0))


def vectorize_predict(predict, num_replicas: int):
    """`predict(state, images) -> logits` as (N, batch, classes) for a replicated state."""
    if num_replicas == 1:
        return predict
    return jax.vmap(predict, in_axes=(STATE_AXES, None))


def select(state: TrainState, replica: int) -> TrainState:
    """Replica `replica`'s state, as a single model's."""
    batched = TrainState(step=False, params=True, opt_state=True, batch_stats=True, ema_params=True)
    return jax.tree.map(
        lambda take, subtree: jax.tree.map(lambda x: x[replica], subtree) if take else subtree,
        batched,
        state,
        is_leaf=lambda x: isinstance(x, bool),
    )
