"""Loss and metrics exact on hand-made logits; the train step compiles once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from lenet_jax import prng
from lenet_jax.models import get_model
from lenet_jax.models.linen_model import as_model
from lenet_jax.training import augment, eval_steps, metrics, steps
from lenet_jax.training.state import TrainState, create_train_state


class FixedLogits(nn.Module):
    """Ignores its input pixels except the first, which selects a row of known logits."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        table = jnp.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
        self.param("unused", nn.initializers.zeros, ())
        return table[x[:, 0, 0, 0].astype(jnp.int32)]


class SeesItsInput(nn.Module):
    """Keeps the last batch it trained on in batch_stats, so a test reads what the step fed
    the model."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        seen = self.variable("batch_stats", "seen", jnp.zeros, x.shape)
        if train:
            seen.value = x
        return x.mean(axis=(1, 2)) @ self.param("w", nn.initializers.zeros, (x.shape[-1], 2))


def test_alternating_flips_mirror_every_batch_of_the_odd_epochs_only():
    tx = optax.sgd(0.1)
    model = SeesItsInput()
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 3, 5, 1)), jnp.uint8)
    labels = jnp.zeros((4,), jnp.int32)
    state = create_train_state(model, tx, prng.key(0), steps.normalize(images, (0.0,), (1.0,)))
    train_step = jax.jit(
        steps.make_train_step(model, tx, mean=(0.0,), std=(1.0,), mirror_odd_epochs_of=2)
    )
    plain = steps.normalize(images, (0.0,), (1.0,))
    for step in range(6):  # epochs of 2 steps: 0 plain, 1 mirrored, 2 plain
        state, _ = train_step(state, images, labels, prng.key(0))
        expected = augment.flip(plain) if (step // 2) % 2 else plain
        np.testing.assert_array_equal(state.batch_stats["seen"], expected)


def test_cross_entropy_matches_hand_computation():
    logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = jnp.array([0, 2])
    expected = [-np.log(np.exp(2) / (np.exp(2) + 2)), np.log(3.0)]
    np.testing.assert_allclose(metrics.cross_entropy(logits, labels), expected, rtol=1e-6)


def test_label_smoothing_moves_mass_to_other_classes():
    # Hand-computed: with smoothing s over K classes the target puts 1 - s + s/K on the label
    # and s/K on each other class, so the loss is -sum(target * log_softmax(logits)).
    logits = jnp.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    labels = jnp.array([0, 2])
    log_p = np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    s, k = 0.3, 3
    targets = np.full((2, 3), s / k)
    targets[[0, 1], [0, 2]] += 1 - s
    expected = -(targets * log_p).sum(-1)
    got = metrics.cross_entropy(logits, labels, s)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Smoothing raises the loss of a confident right answer and lowers a confident wrong one's.
    plain = metrics.cross_entropy(logits, labels)
    assert got[0] > plain[0] and got[1] < plain[1]


def test_correct_counts_argmax_hits():
    logits = jnp.array([[1.0, 2.0], [3.0, 0.0], [0.0, 5.0]])
    chex.assert_trees_all_equal(
        metrics.top_k_correct(logits, jnp.array([1, 1, 1]), 1), jnp.array([1.0, 0, 1])
    )


def test_normalize_maps_uint8_to_standardised_floats():
    images = jnp.array([0, 255], jnp.uint8).reshape(2, 1, 1, 1)
    chex.assert_trees_all_close(
        steps.normalize(images, (0.5,), (0.5,)).ravel(), jnp.array([-1.0, 1.0])
    )


def test_eval_step_sums_are_exact_and_respect_the_mask():
    model = FixedLogits()
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params={"unused": jnp.zeros(())},
        opt_state=(),
        batch_stats={},
    )
    eval_step = eval_steps.make_eval_step(model, mean=(0.0,), std=(1 / 255,))
    # pixel value k (after normalisation) selects row k of the table.
    images = jnp.array([0, 1, 2, 1], jnp.uint8).reshape(4, 1, 1, 1)
    labels = jnp.array([0, 0, 2, 1])
    mask = jnp.array([True, True, True, False])
    sums, predictions = eval_step(state, images, labels, mask)
    ce = lambda row, label: -jax.nn.log_softmax(row)[label]  # noqa: E731
    table = jnp.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    expected_loss = ce(table[0], 0) + ce(table[1], 0) + ce(table[2], 2)
    np.testing.assert_allclose(sums["loss"], expected_loss, rtol=1e-6)
    assert float(sums["accuracy"]) == 1.0  # row 2 is a tie: argmax picks class 0, not 2
    assert float(sums["count"]) == 3.0
    np.testing.assert_array_equal(predictions, [0, 1, 0, 1])  # argmax, ties to the lower class


def _lenet_state(tx, seed=0):
    model = get_model("lenet_modern", dropout_rate=0.5)
    return model, create_train_state(model, tx, prng.key(seed), (28, 28, 1))


def test_train_step_compiles_once_over_several_steps():
    tx = optax.adam(1e-3)
    model, state = _lenet_state(tx)
    train_step = chex.assert_max_traces(
        steps.make_train_step(model, tx, mean=(0.0,), std=(1.0,)), n=1
    )
    compiled = jax.jit(train_step)
    images = jnp.zeros((8, 28, 28, 1), jnp.uint8)
    labels = jnp.zeros((8,), jnp.int32)
    for _ in range(4):
        state, metrics = compiled(state, images, labels, prng.key(0))
    assert int(state.step) == 4
    chex.assert_tree_all_finite(metrics)


def test_step_keys_differ_by_step_and_replay_exactly():
    key = prng.key(0)
    k1, k1_again, k2 = (steps.step_key(key, s) for s in (1, 1, 2))
    assert jnp.array_equal(jax.random.key_data(k1), jax.random.key_data(k1_again))
    assert not jnp.array_equal(jax.random.key_data(k1), jax.random.key_data(k2))


def test_train_step_reduces_the_loss_on_a_fixed_batch():
    tx = optax.adam(3e-3)
    model, state = _lenet_state(tx)
    train_step = jax.jit(steps.make_train_step(model, tx, mean=(0.0,), std=(1.0,)))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 255, (32, 28, 28, 1)), jnp.uint8)
    labels = jnp.asarray(rng.integers(0, 10, 32), jnp.int32)
    losses = []
    for _ in range(30):
        state, metrics = train_step(state, images, labels, prng.key(1))
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0]


def _ema_run(ema: float | steps.EmaRule, accum_steps: int, num_steps: int):
    """(params after each step, from step 0, and the final EMA) of a LeNet on fixed data."""
    tx = optax.sgd(0.1, momentum=0.9)
    if accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accum_steps).gradient_transformation()
    model = get_model("lenet_modern")
    state = create_train_state(model, tx, prng.key(0), (28, 28, 1), ema=True)
    step = jax.jit(
        steps.make_train_step(model, tx, mean=(0.0,), std=(1.0,), ema=ema, accum_steps=accum_steps)
    )
    rng = np.random.default_rng(0)
    history = [state.params]
    for _ in range(num_steps):
        images = jnp.asarray(rng.integers(0, 255, (16, 28, 28, 1)), jnp.uint8)
        labels = jnp.asarray(rng.integers(0, 10, 16), jnp.int32)
        state, _ = step(state, images, labels, prng.key(1))
        history.append(state.params)
    return history, state.ema_params


def test_ema_equals_its_closed_form_after_k_steps():
    """ema_k = d^k p_0 + (1 - d) sum_{i=1..k} d^(k-i) p_i, with p_i the parameters after step i."""
    d, k = 0.8, 5
    history, ema = _ema_run(d, 1, k)
    expected = jax.tree.map(lambda p: d**k * p, history[0])
    for i in range(1, k + 1):
        expected = jax.tree.map(
            lambda e, p, i=i: e + (1 - d) * d ** (k - i) * p, expected, history[i]
        )
    chex.assert_trees_all_close(ema, expected, atol=1e-6, rtol=1e-5)
    assert not np.allclose(jax.tree.leaves(ema)[0], jax.tree.leaves(history[-1])[0])


def test_ema_with_accumulation_moves_only_when_the_parameters_do():
    d = 0.8
    history, ema = _ema_run(d, 2, 4)  # updates at steps 2 and 4
    chex.assert_trees_all_equal(history[1], history[0])  # step 1 only accumulated
    expected = jax.tree.map(
        lambda p0, p2, p4: d * (d * p0 + (1 - d) * p2) + (1 - d) * p4,
        history[0],
        history[2],
        history[4],
    )
    chex.assert_trees_all_close(ema, expected, atol=1e-6, rtol=1e-5)


def test_lookahead_restarts_the_parameters_from_the_ramped_average():
    """Every 3rd step of 6 with a cubic ramp: the average moves once, at step 3, with decay
    d * (3/6)^3, and with lookahead the parameters become that average there."""
    d = 0.8
    plain = steps.EmaRule(decay=d, every=3, ramp="cubic", total_updates=6)
    history, ema = _ema_run(plain, 1, 3)
    decay = d * 0.5**3
    expected = jax.tree.map(lambda p0, p3: decay * p0 + (1 - decay) * p3, history[0], history[3])
    chex.assert_trees_all_close(ema, expected, atol=1e-6, rtol=1e-5)

    ahead = steps.EmaRule(decay=d, every=3, ramp="cubic", total_updates=6, lookahead=True)
    ahead_history, ahead_ema = _ema_run(ahead, 1, 4)
    chex.assert_trees_all_close(ahead_history[2], history[2])  # no sync before step 3
    chex.assert_trees_all_close(ahead_history[3], expected, atol=1e-6, rtol=1e-5)
    chex.assert_trees_all_close(ahead_ema, expected, atol=1e-6, rtol=1e-5)  # step 4: no move
    assert not np.allclose(jax.tree.leaves(ahead_history[4])[0], jax.tree.leaves(expected)[0])


def test_lookahead_ends_the_run_at_the_average_between_moves():
    """6 updates, a move every 4th: after step 4 the parameters train on from the average,
    and after the last step they are set back to it, which did not move since step 4."""
    rule = steps.EmaRule(decay=0.8, every=4, total_updates=6, lookahead=True)
    history, ema = _ema_run(rule, 1, 6)
    assert not np.allclose(jax.tree.leaves(history[5])[0], jax.tree.leaves(history[4])[0])
    chex.assert_trees_all_equal(history[6], ema, history[4])


def test_ema_ramp_decay_is_cubic_in_the_updates_done():
    rule = steps.EmaRule(decay=0.9, ramp="cubic", total_updates=10)
    for updates in (0, 5, 10, 20):
        expected = 0.9 * min(updates / 10, 1.0) ** 3
        np.testing.assert_allclose(rule.decay_at(jnp.asarray(updates)), expected, rtol=1e-6)
    np.testing.assert_allclose(steps.EmaRule(decay=0.9).decay_at(jnp.asarray(3)), 0.9)


def test_test_time_augmentation_averages_the_views_logits():
    """The predict step with TTA equals the weighted mean of plain predictions of each view."""
    model = get_model("lenet_modern", batch_norm=True)
    state = create_train_state(model, optax.sgd(0.1), prng.key(0), (28, 28, 1))
    images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (4, 28, 28, 1)), jnp.uint8)
    plain = eval_steps.make_predict_step(model, mean=(0.5,), std=(0.25,))
    x = steps.normalize(images, (0.5,), (0.25,))

    def logits_of(view):  # a float view fed through the plain step's model call
        out, _ = as_model(model).apply(
            state.params, state.batch_stats, view, train=False, rngs={}, bound_axis=None
        )
        return out

    np.testing.assert_allclose(plain(state, images), logits_of(x), rtol=1e-5, atol=1e-6)
    for mode in ("flip", "flip_translate"):
        tta = eval_steps.make_predict_step(model, mean=(0.5,), std=(0.25,), tta=mode)
        expected = sum(w * logits_of(v) for w, v in augment.tta_views(x, mode))
        np.testing.assert_allclose(tta(state, images), expected, rtol=1e-5, atol=1e-6)


class _WithBatchWideExtra(nn.Module):
    """Logits and, as public models return them, a dict of extras: one per example and one
    over the whole batch (a scalar)."""

    @nn.compact
    def __call__(self, x, *, train: bool):
        logits = nn.Dense(3)(x.reshape(len(x), -1))
        return logits, {"column_mean": x[:, :, 0].mean((1, 2)), "batch_mean": x[..., :2, :].mean()}


def test_test_time_augmentation_averages_every_output_view_by_view():
    """Each view's whole output, a batch-wide scalar too, weighted as if the views ran one by
    one (flip_translate's weights differ, so one pass over all views at once would not)."""
    model = _WithBatchWideExtra()
    state = create_train_state(model, optax.sgd(0.1), prng.key(0), (6, 6, 1))
    images = jnp.asarray(np.random.default_rng(1).integers(0, 255, (5, 6, 6, 1)), jnp.uint8)
    x = steps.normalize(images, (0.5,), (0.25,))
    one_view = eval_steps.make_forward(model, mean=(0.5,), std=(0.25,))
    for mode in ("flip", "flip_translate"):
        views = augment.tta_views(x, mode)
        per_view = [as_model(model).apply_output(
            state.params, state.batch_stats, v, train=False, rngs={}, bound_axis=None
        )[0] for _, v in views]  # fmt: skip
        out = eval_steps.make_forward(model, mean=(0.5,), std=(0.25,), tta=mode)(state, images)
        weighted = [jax.tree.map(lambda v, w=w: w * v, o) for (w, _), o in zip(views, per_view)]
        expected = jax.tree.map(lambda *leaves: sum(leaves), *weighted)
        chex.assert_trees_all_close(out, expected, rtol=1e-5, atol=1e-6)
        assert out.extras["batch_mean"].shape == ()
        assert not np.allclose(
            out.extras["batch_mean"], one_view(state, images).extras["batch_mean"]
        )
