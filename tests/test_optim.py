"""The run's optimizer: clipping bounds the update, groups scale the rate and switch the
decay, frozen parameters never move and hold no optimizer state, and accumulation over k
batches equals the k-times larger batch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lenet_jax.config import base_config
from lenet_jax.errors import UserError
from lenet_jax.training import param_groups
from lenet_jax.training.loop import train_and_evaluate
from lenet_jax.training.optim import make_optimizer, make_schedule

PARAMS = {
    "Conv_0": {"kernel": jnp.ones((3, 3, 1, 2)), "bias": jnp.ones((2,))},
    "Dense_0": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones((3,))},
}


def _optimizer(**settings):
    cfg = base_config().optimizer
    cfg.update({"name": "sgd", "momentum": 0.0, "learning_rate": 1.0, **settings})
    return cfg


def _update(tx, grads, params=PARAMS):
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def _norm(tree) -> float:
    return float(optax.tree.norm(tree))


def test_clip_norm_bounds_the_update_and_keeps_its_direction():
    grads = jax.tree.map(
        lambda p: 100.0 * jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape), PARAMS
    )
    cfg = _optimizer(clip_norm=0.5)
    updates = _update(make_optimizer(cfg, optax.constant_schedule(1.0)), grads)
    assert _norm(updates) == pytest.approx(0.5, rel=1e-5)  # lr 1 x clipped norm
    unclipped = _update(make_optimizer(_optimizer(), optax.constant_schedule(1.0)), grads)
    scale = _norm(updates) / _norm(unclipped)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(unclipped)):
        np.testing.assert_allclose(a, scale * b, rtol=1e-5, atol=1e-7)
    small = jax.tree.map(lambda g: g * 1e-6, grads)  # under the bound: untouched
    np.testing.assert_allclose(
        _norm(_update(make_optimizer(cfg, optax.constant_schedule(1.0)), small)),
        _norm(small),
        rtol=1e-6,
    )


def test_param_groups_scale_the_rate_and_switch_weight_decay_off():
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    groups = ({"params": "bias", "lr_scale": 10.0, "weight_decay": False},)
    cfg = _optimizer(weight_decay=0.5, param_groups=groups)
    updates = _update(make_optimizer(cfg, optax.constant_schedule(0.1)), grads)
    # SGD with L2: -lr * (g + wd * p) = -0.1 * (1 + 0.5) off the group; biases: -1.0 * 1.
    np.testing.assert_allclose(updates["Conv_0"]["kernel"], -0.15, rtol=1e-6)
    np.testing.assert_allclose(updates["Dense_0"]["bias"], -1.0, rtol=1e-6)


def test_a_group_without_lr_scale_keeps_the_rate():
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    cfg = _optimizer(param_groups=({"params": "bias", "weight_decay": False},))
    updates = _update(make_optimizer(cfg, optax.constant_schedule(0.1)), grads)
    np.testing.assert_allclose(updates["Dense_0"]["bias"], -0.1, rtol=1e-6)
    np.testing.assert_allclose(updates["Conv_0"]["kernel"], -0.1, rtol=1e-6)


def test_a_groups_own_weight_decay_as_airbench_scales_its_biases():
    """airbench's bias group: 64x the rate, its decay 1/64 of the others', so every
    parameter decays by the same lr * wd per step."""
    grads = jax.tree.map(jnp.zeros_like, PARAMS)  # the decay alone moves them
    groups = ({"params": "bias", "lr_scale": 64.0, "weight_decay": 0.5 / 64},)
    cfg = _optimizer(weight_decay=0.5, momentum=0.85, nesterov=True, param_groups=groups)
    updates = _update(make_optimizer(cfg, optax.constant_schedule(0.1)), grads)
    # Nesterov's first step: -lr * (1 + momentum) * wd * p, the same in and off the group.
    np.testing.assert_allclose(updates["Dense_0"]["kernel"], -0.1 * 1.85 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(updates["Dense_0"]["bias"], -0.1 * 1.85 * 0.5, rtol=1e-6)
    ones = jax.tree.map(jnp.ones_like, PARAMS)
    biased = _update(make_optimizer(cfg, optax.constant_schedule(0.1)), ones)
    # With unit gradients the bias moves 64x as far as the kernel, less the decay's share.
    np.testing.assert_allclose(biased["Dense_0"]["bias"], -6.4 * 1.85 * (1 + 0.5 / 64), rtol=1e-6)
    np.testing.assert_allclose(biased["Dense_0"]["kernel"], -0.1 * 1.85 * 1.5, rtol=1e-6)


def test_frozen_parameters_get_no_update_no_state_and_stay_out_of_the_clip_norm():
    grads = jax.tree.map(lambda p: 3.0 * jnp.ones_like(p), PARAMS)
    cfg = _optimizer(name="adam", clip_norm=1.0)
    tx = make_optimizer(cfg, optax.constant_schedule(0.1), freeze="^Conv_0/")
    updates = _update(tx, grads)
    assert _norm(updates["Conv_0"]) == 0.0
    assert _norm(updates["Dense_0"]) > 0.0
    # Adam's moments exist for Dense_0's 15 values only: none for the frozen layer.
    state_sizes = [leaf.size for leaf in jax.tree.leaves(tx.init(PARAMS)) if leaf.ndim]
    assert sorted(state_sizes) == sorted([3, 12, 3, 12])
    # The norm clipped is the trainable parameters' alone.
    cfg_sgd = _optimizer(clip_norm=1.0)
    sgd_updates = _update(
        make_optimizer(cfg_sgd, optax.constant_schedule(1.0), freeze="^Conv_0/"), grads
    )
    assert _norm(sgd_updates["Dense_0"]) == pytest.approx(1.0, rel=1e-5)


def test_patterns_that_match_nothing_or_are_not_regexes_get_one_line():
    with pytest.raises(
        UserError,
        match=r"config.freeze='Conv_9' matches no parameter; the parameters are: \['Conv_0/bias'",
    ):
        param_groups.check_matches(PARAMS, freeze="Conv_9", groups=())
    with pytest.raises(UserError, match=r"param_groups\[0\].params='norm' matches no parameter"):
        param_groups.check_matches(PARAMS, freeze="", groups=({"params": "norm"},))
    with pytest.raises(UserError, match=r"param_groups\[0\]: lr_scale=-1"):
        param_groups.check_groups(({"params": "bias", "lr_scale": -1},))
    with pytest.raises(UserError, match=r"weight_decay=-0.1; expected True, False or a coeff"):
        param_groups.check_groups(({"params": "bias", "weight_decay": -0.1},))
    with pytest.raises(UserError, match=r"unknown setting 'lr'"):
        param_groups.check_groups(({"params": "bias", "lr": 2.0},))
    with pytest.raises(UserError, match=r"params='\(' is not a regex"):
        param_groups.check_groups(({"params": "("},))


def test_warmup_linear_is_airbench_triangle():
    cfg = _optimizer(learning_rate=2.0, schedule="warmup_linear", warmup_epochs=2.0)
    schedule = make_schedule(cfg, total_steps=100, steps_per_epoch=10)  # warmup: 20 steps
    rates = [float(schedule(step)) for step in (0, 10, 20, 60, 100)]
    np.testing.assert_allclose(rates, [0.0, 1.0, 2.0, 1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("schedule", ["warmup_linear", "warmup_cosine"])
def test_warmups_start_and_end_at_their_fractions_of_the_peak(schedule):
    """airbench's shape: from 0.2 of the peak up, and down to 0.07 of it."""
    cfg = _optimizer(
        learning_rate=2.0, schedule=schedule, warmup_epochs=2.0, warmup_from=0.2, decay_to=0.07
    )
    rates = make_schedule(cfg, total_steps=100, steps_per_epoch=10)
    np.testing.assert_allclose([float(rates(s)) for s in (0, 20, 100)], [0.4, 2.0, 0.14], atol=1e-6)
    if schedule == "warmup_linear":  # halfway along each line
        np.testing.assert_allclose([float(rates(10)), float(rates(60))], [1.2, 1.07], atol=1e-6)


def test_gradient_accumulation_equals_the_larger_batch(tiny_config, tmp_path):
    """4 batches of 16 accumulated train exactly as batches of 64: same examples per update
    (the epoch's order is shared), same schedule (it counts updates)."""
    large = tiny_config.copy_and_resolve_references()
    large.batch_size = 64
    accumulated = tiny_config.copy_and_resolve_references()
    accumulated.batch_size, accumulated.grad_accum_steps = 16, 4
    a = train_and_evaluate(large, str(tmp_path / "large"))
    b = train_and_evaluate(accumulated, str(tmp_path / "accumulated"))
    assert a.step * 4 == b.step
    for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
        np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)
    assert a.test["accuracy"] == pytest.approx(b.test["accuracy"], abs=1 / 256)


def test_an_optimizer_added_in_one_place_is_accepted_and_trains(tiny_config, tmp_path, monkeypatch):
    """`OPTIMIZERS` is the one place: the config check, the error's list and the run read it."""
    from lenet_jax.training import config_checks, optim

    lion = lambda cfg, schedule: optax.lion(schedule, weight_decay=cfg.weight_decay)  # noqa: E731
    monkeypatch.setitem(optim.OPTIMIZERS, "lion", lion)
    tiny_config.optimizer.name, tiny_config.num_epochs = "lion", 1
    tiny_config.optimizer.learning_rate = 3e-4
    result = train_and_evaluate(tiny_config, str(tmp_path))
    states = jax.tree.leaves(result.state.opt_state, is_leaf=lambda x: hasattr(x, "mu"))
    assert any(type(s).__name__ == "ScaleByLionState" for s in states)
    assert result.test["accuracy"] > 0.2  # ten classes: it learned
    tiny_config.optimizer.name = "lamb"
    with pytest.raises(UserError, match=r"optimizer.name='lamb' .*'adamw', 'lion'"):
        config_checks.validate(tiny_config)

