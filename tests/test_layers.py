"""The faster pooling formulation equals the plain flax op, in values and gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lenet_jax import prng
from lenet_jax.ops import layers


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_matches_flax_pooling(kind):
    x = jax.random.normal(prng.key(2), (3, 8, 10, 4))  # continuous: no ties in a window
    flax_pool = {"max": nn.max_pool, "avg": nn.avg_pool}[kind]

    def ours(x):
        return jnp.sum(jnp.sin(layers.pool(x, kind)))

    def reference(x):
        return jnp.sum(jnp.sin(flax_pool(x, (2, 2), strides=(2, 2))))

    chex.assert_trees_all_close(layers.pool(x, kind), flax_pool(x, (2, 2), strides=(2, 2)))
    chex.assert_trees_all_close(jax.grad(ours)(x), jax.grad(reference)(x), atol=1e-6)


def test_max_pool_of_odd_sizes_falls_back_to_flax():
    x = jax.random.normal(prng.key(3), (1, 7, 7, 2))
    np.testing.assert_array_equal(layers.pool(x, "max"), nn.max_pool(x, (2, 2), strides=(2, 2)))
