"""CifarCNN: shapes, pinned parameter counts, BatchNorm collections and dropout behaviour."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lenet_jax import prng
from lenet_jax.models.cifar import CifarCNN

# conv 3->32 (3x3) + conv 32->64 (3x3) + dense 64*8*8->128 + dense 128->10, each with a bias.
PLAIN_PARAMS = (32 * 27 + 32) + (64 * 32 * 9 + 64) + (4096 * 128 + 128) + (128 * 10 + 10)
# BatchNorm drops the two conv biases (32 + 64) and adds a scale and a bias per channel.
BN_PARAMS = PLAIN_PARAMS - (32 + 64) + 2 * (32 + 64)


def _images(batch: int = 4, seed: int = 0) -> jax.Array:
    return jax.random.normal(prng.key(seed), (batch, 32, 32, 3))


def _init(model: CifarCNN, x: jax.Array):
    return model.init(prng.key(0), x, train=False)


def _count(tree) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("num_classes", [10, 7])
def test_output_shape(batch_norm, num_classes):
    model = CifarCNN(num_classes=num_classes, batch_norm=batch_norm)
    x = _images()
    variables = _init(model, x)
    chex.assert_shape(model.apply(variables, x, train=False), (4, num_classes))
    out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    chex.assert_shape(out, (4, num_classes))


def test_plain_parameter_count():
    assert PLAIN_PARAMS == 545_098
    variables = _init(CifarCNN(), _images())
    assert set(variables) == {"params"}
    assert _count(variables["params"]) == PLAIN_PARAMS


def test_batch_norm_parameter_count_and_no_conv_bias():
    variables = _init(CifarCNN(batch_norm=True), _images())
    assert _count(variables["params"]) == BN_PARAMS == 545_194
    for name in ("Conv_0", "Conv_1"):
        assert set(variables["params"][name]) == {"kernel"}
    chex.assert_shape(variables["batch_stats"]["BatchNorm_1"]["mean"], (64,))


def test_batch_stats_update_in_train_mode_only():
    model = CifarCNN(batch_norm=True)
    x = _images() * 3.0 + 1.0
    variables = _init(model, x)
    _, train_updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    chex.assert_trees_all_equal_shapes(train_updates["batch_stats"], variables["batch_stats"])
    for new, old in zip(
        jax.tree.leaves(train_updates["batch_stats"]), jax.tree.leaves(variables["batch_stats"])
    ):
        assert not np.allclose(new, old)  # every statistic moved towards this batch's
    _, eval_updates = model.apply(variables, x, train=False, mutable=["batch_stats"])
    chex.assert_trees_all_equal(eval_updates["batch_stats"], variables["batch_stats"])


def test_batch_norm_eval_uses_running_averages_not_the_batch():
    model = CifarCNN(batch_norm=True)
    x = _images(batch=8)
    variables = _init(model, x)
    # In eval an example's logits do not depend on the rest of its batch; in train they do.
    full = model.apply(variables, x, train=False)
    half = model.apply(variables, x[:4], train=False)
    np.testing.assert_allclose(full[:4], half, rtol=1e-5, atol=1e-5)
    full_train, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    half_train, _ = model.apply(variables, x[:4], train=True, mutable=["batch_stats"])
    assert not np.allclose(full_train[:4], half_train, atol=1e-4)


def test_dropout_deterministic_in_eval_random_in_train():
    model = CifarCNN(dropout_rate=0.5)
    x = _images()
    variables = _init(model, x)
    eval_a = model.apply(variables, x, train=False)
    eval_b = model.apply(variables, x, train=False, rngs={"dropout": prng.key(1)})
    reference = CifarCNN(dropout_rate=0.0).apply(variables, x, train=False)
    chex.assert_trees_all_equal(eval_a, reference)  # dropout is the identity in eval
    chex.assert_trees_all_equal(eval_b, reference)

    def train_logits(seed: int) -> jax.Array:
        return model.apply(variables, x, train=True, rngs={"dropout": prng.key(seed)})

    chex.assert_trees_all_equal(train_logits(1), train_logits(1))
    assert not jnp.allclose(train_logits(1), train_logits(2))
    assert not jnp.allclose(train_logits(1), eval_a)
