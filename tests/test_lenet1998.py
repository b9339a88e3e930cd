"""The 1998 LeNet-5: pinned parameter count, output shapes, padding and dropout."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lenet_jax import prng
from lenet_jax.models.lenet1998 import LeNet1998, pad_to_paper_size


def init(model: LeNet1998, shape):
    return model.init(prng.key(0), jnp.zeros(shape), train=False)


def count_params(variables) -> int:
    return sum(x.size for x in jax.tree.leaves(variables["params"]))


def test_parameter_count_is_the_papers_with_full_c3():
    c1 = 6 * (1 * 5 * 5 + 1)  # 156
    c3 = 16 * (6 * 5 * 5 + 1)  # 2,416
    c5 = 120 * (16 * 5 * 5 + 1)  # 48,120
    f6 = 84 * (120 + 1)  # 10,164
    output = 10 * (84 + 1)  # 850
    assert c1 + c3 + c5 + f6 + output == 61_706
    assert count_params(init(LeNet1998(), (1, 28, 28, 1))) == 61_706


def test_rgb_input_only_widens_c1():
    assert count_params(init(LeNet1998(), (1, 32, 32, 3))) == 61_706 + 2 * 5 * 5 * 6


@pytest.mark.parametrize("shape", [(5, 28, 28, 1), (5, 32, 32, 3)])
def test_output_shape(shape):
    model = LeNet1998(num_classes=7)
    x = jnp.zeros(shape)
    chex.assert_shape(model.apply(init(model, shape), x, train=False), (5, 7))


def test_c5_output_is_1x1_for_both_input_sizes():
    for shape in [(1, 28, 28, 1), (1, 32, 32, 3)]:
        _, state = LeNet1998().apply(
            init(LeNet1998(), shape),
            jnp.zeros(shape),
            train=False,
            capture_intermediates=True,
            mutable=["intermediates"],
        )
        chex.assert_shape(state["intermediates"]["C5"]["__call__"][0], (1, 1, 1, 120))


def test_28x28_is_padded_centred_and_32x32_is_untouched():
    x = jnp.ones((1, 28, 28, 1))
    padded = np.asarray(pad_to_paper_size(x))
    assert padded.shape == (1, 32, 32, 1)
    assert padded[0, 2:30, 2:30].min() == 1 and padded.sum() == 28 * 28
    y = jnp.ones((1, 32, 32, 3))
    assert pad_to_paper_size(y) is y


def test_dropout_is_active_only_in_training():
    model = LeNet1998(dropout_rate=0.5)
    x = jax.random.uniform(prng.key(1), (4, 28, 28, 1))
    variables = init(model, x.shape)
    # In eval the dropout layers are the identity: the output equals the same weights in a
    # model without dropout, whatever dropout key is offered.
    reference = LeNet1998(dropout_rate=0.0).apply(variables, x, train=False)
    offered = model.apply(variables, x, train=False, rngs={"dropout": prng.key(5)})
    chex.assert_trees_all_equal(model.apply(variables, x, train=False), reference)
    chex.assert_trees_all_equal(offered, reference)
    a = model.apply(variables, x, train=True, rngs={"dropout": prng.key(2)})
    b = model.apply(variables, x, train=True, rngs={"dropout": prng.key(3)})
    assert not jnp.allclose(a, b)
