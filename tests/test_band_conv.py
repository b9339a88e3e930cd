"""The banded-matmul convolution equals XLA's, in values and gradients, and is chosen per layer."""

import chex
import jax
import jax.numpy as jnp
import pytest
from absl.testing import parameterized
from jax import lax

from lenet_jax import prng
from lenet_jax.ops import band_conv
from lenet_jax.ops import conv as conv_impls

NHWC = ("NHWC", "HWIO", "NHWC")
# (input h, w, kernel h, w, in, out channels, padding as flax passes it)
SHAPES = {
    "lenet_conv1": (28, 28, 5, 5, 1, 6, ((2, 2), (2, 2))),
    "lenet_conv2": (14, 14, 5, 5, 6, 16, "VALID"),
    "cifar_conv1_same": (12, 12, 3, 3, 3, 8, "SAME"),
    "uneven": (9, 11, 3, 2, 2, 5, ((1, 0), (2, 1))),
}


def reference_conv(x, kernel, padding):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=NHWC)


def band(impl="band"):
    conv = conv_impls.conv_general_dilated(impl)

    def apply(x, kernel, padding, strides=(1, 1)):
        numbers = lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)
        return conv(x, kernel, strides, padding, dimension_numbers=numbers)

    return apply


def inputs(shape, seed=0):
    h, w, kh, kw, cin, cout, _ = shape
    x_key, k_key = jax.random.split(prng.key(seed))
    return jax.random.normal(x_key, (3, h, w, cin)), jax.random.normal(k_key, (kh, kw, cin, cout))


class BandConvTest(parameterized.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*((name, shape) for name, shape in SHAPES.items()))
    def test_values_and_gradients_match_xla(self, shape):
        x, kernel = inputs(shape)
        padding = shape[-1]
        ours = self.variant(lambda x, k: band()(x, k, padding))
        chex.assert_trees_all_close(ours(x, kernel), reference_conv(x, kernel, padding), atol=1e-4)

        def loss(conv):
            return lambda x, k: jnp.sum(jnp.sin(conv(x, k)))

        grads = self.variant(jax.grad(loss(lambda x, k: band()(x, k, padding)), (0, 1)))(x, kernel)
        expected = jax.grad(loss(lambda x, k: reference_conv(x, k, padding)), (0, 1))(x, kernel)
        chex.assert_trees_all_close(grads, expected, rtol=1e-4, atol=1e-4)

    @parameterized.parameters(1, 2, 5, 10)
    def test_every_tile_that_divides_the_width_gives_the_same_result(self, tile):
        x, kernel = inputs(SHAPES["lenet_conv2"], seed=1)
        chex.assert_trees_all_close(
            band_conv.band_conv(x, kernel, tile),
            reference_conv(x, kernel, "VALID"),
            atol=1e-4,
        )


def test_a_tile_that_does_not_divide_the_width_is_refused():
    x, kernel = inputs(SHAPES["lenet_conv2"])
    with pytest.raises(ValueError, match="tile 3 does not divide the output width 10"):
        band_conv.band_conv(x, kernel, 3)


@pytest.mark.parametrize(
    ("out_width", "kernel_width", "tile"),
    [(28, 5, 4), (10, 5, 5), (32, 3, 2), (7, 5, 7), (3, 1, 1)],
)
def test_band_tile_is_the_smallest_divisor_at_least_kernel_width_minus_one(
    out_width, kernel_width, tile
):
    assert band_conv.band_tile(out_width, kernel_width) == tile
