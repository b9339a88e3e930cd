"""A population of models trained at once, in one compiled step, over a replica axis.

With `config.num_replicas` = N > 1 every leaf of the train state but `step` gets a leading
axis of N (the replicas step together, so one step counter serves them all), and replica
r's init, dropout and augmentation keys are the run's keys folded with r. With N = 1
nothing is vectorised, so a run's state and checkpoints are exactly those of one model.

`config.replica_loop` says how the compiled step walks the replica axis: `vmap` computes
all replicas at once (wide, batched operations: an accelerator's path); `map` runs them one
after another inside the same compiled step (`lax.map`), so each replica's activations
stay in the CPU's caches, which on XLA:CPU is faster than both `vmap` and N separate steps
(the README's population figures). `auto` is `map` on the CPU backend, `vmap` elsewhere.
Both compute the same function of the same keys.
"""

import jax
import jax.numpy as jnp

from lenet_jax.errors import UserError
from lenet_jax.training.state import TrainState

# vmap's axes for a replicated state: the step is shared, everything else has axis 0.
STATE_AXES = TrainState(step=None, params=0, opt_state=0, batch_stats=0, ema_params=0)
REPLICA_LOOPS = ("auto", "vmap", "map")  # what config.replica_loop accepts


def resolve_loop(replica_loop: str, backend: str | None = None) -> str:
    """The loop over replicas `config.replica_loop` names; `auto`: `lax.map` on the CPU,
    `vmap` on an accelerator (`backend`: JAX's default unless given)."""
    if replica_loop not in REPLICA_LOOPS:
        raise UserError(
            f"config.replica_loop={replica_loop!r}; expected one of {list(REPLICA_LOOPS)}"
        )
    if replica_loop == "auto":
        return "map" if (backend or jax.default_backend()) == "cpu" else "vmap"
    return replica_loop


def replica_keys(key: jax.Array, num_replicas: int) -> jax.Array:
    """(N,) keys: `key` folded with each replica's index."""
    return jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(num_replicas))


def vectorize_init(create, num_replicas: int):
    """`create(key) -> TrainState` for one model, as `init(keys (N,)) -> replicated state`."""
    if num_replicas == 1:
        return create
    return jax.vmap(create, out_axes=STATE_AXES)


def vectorize_train_step(train_step, num_replicas: int, *, own_data: bool, loop: str = "vmap"):
    """The train step over all replicas: keys (N,), and with `own_data` images and labels of
    shape (batch, N, ...), replica r training on [:, r] (its own data order); else one batch
    for all. Metric sums come back with a leading replica axis: (N,) per metric."""
    if num_replicas == 1:
        return train_step
    if loop == "vmap":
        data = 1 if own_data else None
        return jax.vmap(train_step, in_axes=(STATE_AXES, data, data, 0), out_axes=(STATE_AXES, 0))

    def mapped(state: TrainState, images, labels, keys):
        step = state.step  # shared: kept out of the mapped values

        def one(per_replica):
            replica, key, *data = per_replica
            x, y = data if own_data else (images, labels)
            new, sums = train_step(replica.replace(step=step), x, y, key)
            return new.replace(step=None), sums

        data = (jnp.moveaxis(images, 1, 0), jnp.moveaxis(labels, 1, 0)) if own_data else ()
        new, sums = jax.lax.map(one, (state.replace(step=None), keys, *data))
        return new.replace(step=step + 1), sums

    return mapped


def vectorize_predict(predict, num_replicas: int, loop: str = "vmap"):
    """`predict(state, *inputs) -> outputs` for a replicated state, every replica seeing
    the same inputs: each output gets a leading replica axis (logits (N, batch, classes))."""
    if num_replicas == 1:
        return predict

    def vectorized(state: TrainState, *inputs):
        if loop == "vmap":
            return jax.vmap(lambda replica: predict(replica, *inputs), in_axes=(STATE_AXES,))(state)
        one = lambda replica: predict(replica.replace(step=state.step), *inputs)  # noqa: E731
        return jax.lax.map(one, state.replace(step=None))

    return vectorized


def select(state: TrainState, replica: int) -> TrainState:
    """Replica `replica`'s state, as a single model's."""
    batched = TrainState(step=False, params=True, opt_state=True, batch_stats=True, ema_params=True)
    return jax.tree.map(
        lambda take, subtree: jax.tree.map(lambda x: x[replica], subtree) if take else subtree,
        batched,
        state,
        is_leaf=lambda x: isinstance(x, bool),
    )
