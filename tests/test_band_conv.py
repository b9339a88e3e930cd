"""The banded-matmul convolution equals XLA's, in values and gradients, and is chosen per layer."""

import chex
import jax
import jax.numpy as jnp
import pytest
from absl.testing import parameterized
from flax import linen as nn
from jax import lax

from lenet_jax import config as config_lib
from lenet_jax.errors import UserError
from lenet_jax.models import get_model
from lenet_jax.ops import band_conv

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
    conv = band_conv.conv_general_dilated(impl)

    def apply(x, kernel, padding, strides=(1, 1)):
        numbers = lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)
        return conv(x, kernel, strides, padding, dimension_numbers=numbers)

    return apply


def inputs(shape, seed=0):
    h, w, kh, kw, cin, cout, _ = shape
    x_key, k_key = jax.random.split(jax.random.key(seed))
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


def _uses_xla_conv(fn, *args) -> bool:
    return "conv_general_dilated" in str(jax.make_jaxpr(fn)(*args))


@pytest.mark.parametrize(
    ("impl", "in_features", "expect_xla"),
    [
        ("auto", 1, False),
        ("auto", 7, False),
        ("auto", 8, True),
        ("xla", 1, True),
        ("band", 32, False),
    ],
)
def test_impl_picks_the_band_for_few_input_channels_on_cpu(impl, in_features, expect_xla):
    assert jax.default_backend() == "cpu"
    x = jnp.zeros((2, 10, 10, in_features))
    kernel = jnp.zeros((3, 3, in_features, 4))
    assert _uses_xla_conv(lambda x, k: band(impl)(x, k, "SAME"), x, kernel) == expect_xla


def test_strided_convolutions_always_go_to_xla():
    x, kernel = jnp.ones((2, 10, 10, 1)), jnp.ones((3, 3, 1, 4))
    strided = lambda x, k: band("band")(x, k, "VALID", strides=(2, 2))  # noqa: E731
    assert _uses_xla_conv(strided, x, kernel)
    chex.assert_trees_all_close(
        strided(x, kernel),
        lax.conv_general_dilated(x, kernel, (2, 2), "VALID", dimension_numbers=NHWC),
    )


def test_an_input_smaller_than_the_kernel_goes_to_xla():
    x, kernel = jnp.ones((1, 3, 3, 1)), jnp.ones((5, 5, 1, 2))
    assert _uses_xla_conv(lambda x, k: band("band")(x, k, "VALID"), x, kernel)


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError, match="unknown conv_impl 'fast'"):
        band("fast")(jnp.ones((1, 6, 6, 1)), jnp.ones((3, 3, 1, 2)), "VALID")


@pytest.mark.parametrize("name", ["lenet_d2l", "lenet5_1998", "cifar_cnn_bn"])
def test_models_give_the_same_outputs_and_gradients_with_either_impl(name):
    shape = (2, 16, 16, 3) if name.startswith("cifar") else (2, 28, 28, 1)
    x = jax.random.uniform(jax.random.key(4), shape)
    xla, ours = get_model(name, conv_impl="xla"), get_model(name, conv_impl="band")
    variables = xla.init(jax.random.key(5), x, train=False)
    assert jax.tree.structure(variables) == jax.tree.structure(
        ours.init(jax.random.key(5), x, train=False)
    )

    @jax.jit
    def outputs_and_grads(params):
        def loss(model):
            def of(params):
                logits = model.apply({**variables, "params": params}, x, train=False)
                return jnp.sum(logits**2), logits

            return of

        return [jax.grad(loss(model), has_aux=True)(params) for model in (ours, xla)]

    (our_grads, our_logits), (xla_grads, xla_logits) = outputs_and_grads(variables["params"])
    chex.assert_trees_all_close(our_logits, xla_logits, atol=1e-5)
    chex.assert_trees_all_close(our_grads, xla_grads, rtol=1e-4, atol=1e-5)


def test_config_names_the_allowed_conv_impls():
    config = config_lib.base_config()
    config.model.conv_impl = "fast"
    with pytest.raises(UserError, match=r"config.model.conv_impl='fast' is not allowed"):
        config_lib.validate(config)


def test_flax_conv_keeps_its_parameter_names_and_shapes():
    conv = nn.Conv(6, (5, 5), padding=2, conv_general_dilated=band_conv.conv_general_dilated())
    params = conv.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    assert jax.tree.map(jnp.shape, params) == {"kernel": (5, 5, 1, 6), "bias": (6,)}
