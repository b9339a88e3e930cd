"""The pure train step: no I/O, no Python side effects, safe to jit, pmap or shard (the
eval and predict steps are in `training.eval_steps`).

Images arrive as uint8 and are normalised here, inside the compiled step, so the host
only ever moves bytes. Steps call the model through the contract (`models.contract.Model`)
and return the metrics' masked sums (`training.metrics`).
"""

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from lenet_jax.models.contract import Model
from lenet_jax.models.linen_model import as_model
from lenet_jax.training import losses, metrics
from lenet_jax.training.augment import Augment, flip
from lenet_jax.training.losses import Loss
from lenet_jax.training.state import TrainState
from lenet_jax.training.sweep_optim import swept_values


def normalize(
    images: jax.Array, mean: Sequence[float], std: Sequence[float], dtype=jnp.float32
) -> jax.Array:
    x = images.astype(jnp.float32) / 255.0
    x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
    return x.astype(dtype)


def step_key(train_key: jax.Array, step: jax.Array) -> jax.Array:
    """The key of step `step`: a resumed run replays it with nothing extra saved."""
    return jax.random.fold_in(train_key, step)


def device_key(key: jax.Array, axis_name: str) -> jax.Array:
    """Under pmap: a different key per device, still a pure function of (seed, step, device)."""
    return jax.random.fold_in(key, jax.lax.axis_index(axis_name))


EMA_RAMPS = ("constant", "cubic")  # what config.ema_ramp accepts


@dataclasses.dataclass(frozen=True)
class EmaRule:
    """How the state's `ema_params` follow the parameters (config.ema_*, config.lookahead).

    Every `every` updates: `ema = d * ema + (1 - d) * params`, where d is `decay`, or with
    the cubic ramp `decay * (updates / total_updates)^3`. With `lookahead` the parameters
    then restart from the new average (Zhang et al.'s slow weights, as airbench does), and
    after the run's last update (`total_updates`) they are set to the average.
    """

    decay: float
    every: int = 1
    ramp: str = "constant"
    total_updates: int = 1
    lookahead: bool = False

    def decay_at(self, updates: jax.Array) -> jax.Array:
        """The decay used when the average moves after `updates` optimizer updates."""
        if self.ramp == "constant":
            return jnp.asarray(self.decay, jnp.float32)
        if self.ramp == "cubic":
            progress = jnp.minimum(updates / self.total_updates, 1.0)
            return (self.decay * progress**3).astype(jnp.float32)
        raise ValueError(f"unknown EMA ramp {self.ramp!r}; known: {list(EMA_RAMPS)}")


def make_train_step(
    model: Model,
    tx: optax.GradientTransformation,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    loss: Loss | None = None,
    augment: Augment | None = None,
    compute_dtype=jnp.float32,
    axis_name: str | None = None,
    ema: EmaRule | float = 0.0,
    accum_steps: int = 1,
    mirror_odd_epochs_of: int = 0,
):
    """Returns `train_step(state, images, labels, train_key) -> (state, metric sums)`.

    The step minimises `loss` (default: plain cross-entropy) and reports its named terms.
    With `axis_name` (under pmap) gradients and batch statistics are averaged and metric
    sums added over that axis, the device index is folded into the dropout key so devices
    draw different masks, and `augment` (made with the same `axis_name`) draws each
    device's share of the global batch's augmentations. Where the state keeps `ema_params`
    they follow the parameters as `ema` says (a bare float: that decay after every update);
    with gradient accumulation updates happen on every `accum_steps`-th step only. With
    `mirror_odd_epochs_of` (the steps per epoch) every batch of each odd epoch is mirrored
    whole: alternating flips, over a train split that `augment.mirror_half` prepared.
    """
    model = as_model(model)
    loss = loss or losses.Loss("cross_entropy", losses.cross_entropy())
    rule = ema if isinstance(ema, EmaRule) else EmaRule(decay=float(ema))

    def train_step(state: TrainState, images, labels, train_key):
        values = swept_values(state.opt_state)  # a sweep's member's, else None
        x, dropout_key = _step_inputs(
            images, train_key, state.step, (mean, std, compute_dtype), values,
            augment=augment, axis_name=axis_name, mirror_every=mirror_odd_epochs_of,
        )  # fmt: skip

        logits, value, batch_stats, grads = _gradients(
            model, loss, state, x, labels, dropout_key, axis_name
        )
        sums = metrics.batch_sums(logits, labels, value.per_example, terms=value.terms)
        if axis_name is not None:
            grads, batch_stats = jax.lax.pmean((grads, batch_stats), axis_name)
            sums = jax.lax.psum(sums, axis_name)
        return _updated(state, tx, grads, batch_stats, rule, accum_steps), sums

    return train_step


def _gradients(model: Model, loss: Loss, state: TrainState, x, labels, dropout_key, axis_name):
    """(logits, the loss's value, new batch statistics, the objective's gradients) of the
    train-mode forward pass on `x`."""

    def objective(params):
        out, batch_stats = model.apply_output(
            params,
            state.batch_stats,
            x,
            train=True,
            rngs=model.rngs(dropout_key),
            bound_axis=axis_name,
        )
        value = loss(out, labels, values=swept_values(state.opt_state))
        return value.objective, (out.logits, value, batch_stats)

    (_, (logits, value, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
        state.params
    )
    return logits, value, batch_stats, grads


def _step_inputs(
    images, train_key, step, normalization, values, *, augment, axis_name, mirror_every
):
    """(the step's normalised, augmented images, its dropout key): the step's key split
    in two, the dropout one folded with the device under pmap (augmentations take their
    slice of the global draws); every batch of an odd epoch mirrored with `mirror_every`."""
    dropout_key, augment_key = jax.random.split(step_key(train_key, step))
    if axis_name is not None:
        dropout_key = device_key(dropout_key, axis_name)
    x = normalize(images, *normalization)
    if augment is not None:
        x = augment(augment_key, x, values)
    if mirror_every:
        odd_epoch = (step // mirror_every) % 2 == 1
        x = jnp.where(odd_epoch, flip(x), x)
    return x, dropout_key


def _updated(state: TrainState, tx, grads, batch_stats, rule: EmaRule, accum_steps: int):
    """The state after one update: the optimizer's step, the EMA's, the new statistics."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    params, ema_params = ema_update(state, params, rule, accum_steps)
    return state.replace(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        batch_stats=batch_stats,
        ema_params=ema_params,
    )


def ema_update(state: TrainState, params, rule: EmaRule, accum_steps: int):
    """(params, ema_params) after a step that produced `params`: the average moves on every
    `rule.every`-th update (an update being every `accum_steps`-th step), and with lookahead
    the parameters restart from it there. (params, None) where no EMA is kept."""
    if state.ema_params is None:
        return params, None
    done = state.step + 1  # steps done after this one
    moves = done % (accum_steps * rule.every) == 0
    decay = jnp.where(moves, rule.decay_at(done // accum_steps), 1.0)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
    if rule.lookahead:
        # The run's last update also leaves the parameters at the average, as airbench's
        # final lookahead does: the weights a run ends with are its average.
        last = (done % accum_steps == 0) & (done // accum_steps == rule.total_updates)
        params = jax.tree.map(lambda e, p: jnp.where(moves | last, e, p), ema, params)
    return params, ema


def make_scan_epoch(train_step):
    """Returns `epoch(state, images, labels, batch_indices, train_key) -> (state, sums)`.

    The epoch's steps in one `lax.scan` over device-resident data: one dispatch per epoch,
    the fast path on accelerators. `batch_indices` is (steps, batch); sums are stacked.
    """

    def epoch(state: TrainState, images, labels, batch_indices, train_key):
        def one_step(state, indices):
            return train_step(state, images[indices], labels[indices], train_key)

        return jax.lax.scan(one_step, state, batch_indices)

    return epoch


@jax.jit
def trees_equal(a, b) -> jax.Array:
    """Whether two parameter trees hold the same values, as one scalar from the device."""
    leaves = [jnp.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
    return jnp.all(jnp.stack(leaves))
