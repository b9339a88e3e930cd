"""The faster convolution and pooling formulations equal the plain flax ops, values and grads."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lenet_jax.models import layers
from lenet_jax.models.conv import Conv


def _values_and_grads(module, x):
    variables = module.init(jax.random.key(0), x)

    def loss(variables, x):
        return jnp.sum(jnp.sin(module.apply(variables, x)))

    return module.apply(variables, x), jax.grad(loss, argnums=(0, 1))(variables, x)


@pytest.mark.parametrize("impl", ["lax", "shifted", "auto"])
@pytest.mark.parametrize("channels, padding", [(1, 2), (1, "VALID"), (3, 1), (6, "SAME")])
def test_conv_matches_flax_conv(impl, channels, padding):
    x = jax.random.normal(jax.random.key(1), (4, 12, 12, channels))
    ours = _values_and_grads(Conv(5, (5, 5), padding=padding, impl=impl), x)
    flax = _values_and_grads(nn.Conv(5, (5, 5), padding=padding), x)
    chex.assert_trees_all_close(ours, flax, atol=1e-5, rtol=1e-5)


def test_conv_is_the_same_under_jit():
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    module = Conv(3, (3, 3), padding=1, impl="shifted")
    variables = module.init(jax.random.key(0), x)
    chex.assert_trees_all_close(
        jax.jit(module.apply)(variables, x), module.apply(variables, x), atol=1e-6
    )


def test_unknown_conv_impl_is_refused():
    with pytest.raises(ValueError, match="unknown conv impl 'fft'"):
        Conv(3, (3, 3), impl="fft").init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_matches_flax_pooling(kind):
    x = jax.random.normal(jax.random.key(2), (3, 8, 10, 4))  # continuous: no ties in a window
    flax_pool = {"max": nn.max_pool, "avg": nn.avg_pool}[kind]

    def ours(x):
        return jnp.sum(jnp.sin(layers.pool(x, kind)))

    def reference(x):
        return jnp.sum(jnp.sin(flax_pool(x, (2, 2), strides=(2, 2))))

    chex.assert_trees_all_close(layers.pool(x, kind), flax_pool(x, (2, 2), strides=(2, 2)))
    chex.assert_trees_all_close(jax.grad(ours)(x), jax.grad(reference)(x), atol=1e-6)


def test_max_pool_of_odd_sizes_falls_back_to_flax():
    x = jax.random.normal(jax.random.key(3), (1, 7, 7, 2))
    np.testing.assert_array_equal(layers.pool(x, "max"), nn.max_pool(x, (2, 2), strides=(2, 2)))
