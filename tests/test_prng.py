"""The toolkit's keys draw Threefry's bits (what `jax.random.key` gives), only flat."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lenet_jax import prng

SHAPES = [(), (3, 5), (2, 4, 5)]  # a conv kernel's four: the module test below
DRAWS = {
    "normal": lambda key, shape: jax.random.normal(key, shape),
    "bernoulli": lambda key, shape: jax.random.bernoulli(key, 0.3, shape),
    "bits8": lambda key, shape: jax.random.bits(key, shape, jnp.uint8),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_draw_of_every_rank_is_threefrys(shape):
    """Floats, booleans and 8-bit words; under jit too, where the draw compiles
    together with what follows it."""
    for name, draw in DRAWS.items():
        theirs = draw(jax.random.key(3), shape)
        np.testing.assert_array_equal(draw(prng.key(3), shape), theirs, err_msg=name)
    jitted = jax.jit(lambda key: jnp.tanh(DRAWS["normal"](key, shape)))
    np.testing.assert_array_equal(jitted(prng.key(3)), jitted(jax.random.key(3)))


def test_split_fold_in_and_permutation_are_threefrys():
    def data(key):
        return np.asarray(jax.random.key_data(key))

    for derive in (
        lambda key: data(jax.random.split(key, (2, 3))),
        lambda key: data(jax.random.fold_in(key, 9)),
        lambda key: jax.random.permutation(key, 50),
    ):
        np.testing.assert_array_equal(derive(prng.key(5)), derive(jax.random.key(5)))


class _ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Conv(8, (3, 3))(x)
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(10, kernel_init=nn.initializers.he_normal())(x.reshape(len(x), -1))


def test_a_modules_init_and_dropout_are_what_plain_keys_give():
    """A fork's own initialisers and dropout draw with the keys they are handed."""
    x, net = jnp.ones((2, 6, 6, 3)), _ConvNet()

    def run(key):
        init_key, dropout_key = jax.random.split(key)
        params = jax.jit(lambda k: net.init(k, x, train=False))(init_key)
        return params, net.apply(params, x, train=True, rngs={"dropout": dropout_key})

    jax.tree.map(np.testing.assert_array_equal, run(prng.key(0)), run(jax.random.key(0)))
