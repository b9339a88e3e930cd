"""Pure train and eval steps: no I/O, no Python side effects, safe to jit, pmap or shard.

Images arrive as uint8 and are normalised here, inside the compiled step, so the host
only ever moves bytes.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from lenet_jax.augment import Augment
from lenet_jax.state import TrainState


def normalize(
    images: jax.Array, mean: Sequence[float], std: Sequence[float], dtype=jnp.float32
) -> jax.Array:
    x = images.astype(jnp.float32) / 255.0
    x = (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
    return x.astype(dtype)


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy against integer labels."""
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


def step_key(train_key: jax.Array, step: jax.Array) -> jax.Array:
    """The key of step `step`: a resumed run replays it with nothing extra saved."""
    return jax.random.fold_in(train_key, step)


def device_key(key: jax.Array, axis_name: str) -> jax.Array:
    """Under pmap: a different key per device, still a pure function of (seed, step, device)."""
    return jax.random.fold_in(key, jax.lax.axis_index(axis_name))


def make_train_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    label_smoothing: float = 0.0,
    augment: Augment | None = None,
    compute_dtype=jnp.float32,
    axis_name: str | None = None,
):
    """Returns `train_step(state, images, labels, train_key) -> (state, metrics)`.

    With `axis_name` (under pmap) gradients, metrics and batch statistics are averaged
    over that axis, and the device index is folded into the key so devices draw
    different dropout masks and augmentations.
    """

    def train_step(state: TrainState, images, labels, train_key):
        key = step_key(train_key, state.step)
        if axis_name is not None:
            key = device_key(key, axis_name)
        dropout_key, augment_key = jax.random.split(key)
        x = normalize(images, mean, std, compute_dtype)
        if augment is not None:
            x = augment(augment_key, x)

        def loss_fn(params):
            variables = {"params": params}
            mutable = []
            if state.batch_stats:
                variables["batch_stats"] = state.batch_stats
                mutable = ["batch_stats"]
            logits, updates = model.apply(
                variables, x, train=True, rngs={"dropout": dropout_key}, mutable=mutable
            )
            loss = cross_entropy(logits, labels, label_smoothing).mean()
            return loss, (logits, updates.get("batch_stats", state.batch_stats))

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        metrics = {"loss": loss, "accuracy": correct(logits, labels).mean()}
        if axis_name is not None:
            grads, batch_stats, metrics = jax.lax.pmean((grads, batch_stats, metrics), axis_name)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            batch_stats=batch_stats,
        )
        return new_state, metrics

    return train_step


def make_scan_epoch(train_step):
    """Returns `epoch(state, images, labels, batch_indices, train_key) -> (state, metrics)`.

    The epoch's steps in one `lax.scan` over device-resident data: one dispatch per epoch,
    the fast path on accelerators. `batch_indices` is (steps, batch); metrics are stacked.
    """

    def epoch(state: TrainState, images, labels, batch_indices, train_key):
        def one_step(state, indices):
            return train_step(state, images[indices], labels[indices], train_key)

        return jax.lax.scan(one_step, state, batch_indices)

    return epoch


def make_eval_step(
    model: nn.Module, *, mean: Sequence[float], std: Sequence[float], compute_dtype=jnp.float32
):
    """Returns `eval_step(state, images, labels, mask) -> {loss_sum, correct, count}`.

    Sums (not means) so padded final batches and device shards combine exactly.
    """
    predict = make_predict_step(model, mean=mean, std=std, compute_dtype=compute_dtype)

    def eval_step(state: TrainState, images, labels, mask):
        logits = predict(state, images)
        mask = mask.astype(jnp.float32)
        return {
            "loss_sum": (cross_entropy(logits, labels) * mask).sum(),
            "correct": (correct(logits, labels) * mask).sum(),
            "count": mask.sum(),
        }

    return eval_step


def make_predict_step(
    model: nn.Module, *, mean: Sequence[float], std: Sequence[float], compute_dtype=jnp.float32
):
    """Returns `predict(state, uint8 images) -> float32 logits`, in eval mode."""

    def predict(state: TrainState, images):
        variables = {"params": state.params}
        if state.batch_stats:
            variables["batch_stats"] = state.batch_stats
        x = normalize(images, mean, std, compute_dtype)
        return model.apply(variables, x, train=False).astype(jnp.float32)

    return predict
