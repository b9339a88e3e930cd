"""The toolkit's random keys: JAX's Threefry, with its bits drawn as one flat vector.

XLA:CPU compiles Threefry's counter arithmetic slowly when the draw has several dimensions
(a conv kernel's four): the shaped iota that numbers the elements becomes a fusion that
takes a large share of a model init's compile time. Threefry's counter of an element is
its flat index, so drawing the same number of bits as a vector and reshaping gives the
same bits, and compiles like any one-dimensional draw. The README's speed section has the
figures; `tests/test_prng.py` checks the bits are Threefry's.

Every key the toolkit makes comes from `key(seed)`. Keys carry their implementation, so
the model's init, dropout, augmentation, data order, and a fork's own `jax.random` calls
on those keys all draw flat, and give the numbers `jax.random.key(seed)` would.
"""

import math

import jax
from jax.extend import random as jax_random

_THREEFRY = jax_random.threefry_prng_impl


def _flat_bits(key_data: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    return _THREEFRY.random_bits(key_data, bit_width, (math.prod(shape),)).reshape(shape)


FLAT_THREEFRY = jax_random.define_prng_impl(
    key_shape=_THREEFRY.key_shape,
    seed=_THREEFRY.seed,
    split=_THREEFRY.split,
    random_bits=_flat_bits,
    fold_in=_THREEFRY.fold_in,
    name="threefry2x32_flat",
    tag="fryflat",
)


def key(seed: int) -> jax.Array:
    """A typed key for `seed`: `jax.random.key(seed)`'s numbers, drawn flat."""
    return jax.random.key(seed, impl=FLAT_THREEFRY)
