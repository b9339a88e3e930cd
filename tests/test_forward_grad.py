"""ops/forward_grad.py: XLA's convolution whose two gradients are forward convolutions, against
XLA's own gradients, alone and inside a scanned train step."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from lenet_jax.ops import conv as conv_impls
from lenet_jax.ops.forward_grad import forward_grad_conv

NHWC = ("NHWC", "HWIO", "NHWC")


def xla_conv(x, kernel, padding):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=NHWC)


def random_inputs(batch, size, kernel_size, cin, cout, seed=0):
    # NumPy's generator: jax.random's, run eagerly, compiles for every new shape.
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *size, cin), np.float32)
    kernel = rng.standard_normal((*kernel_size, cin, cout), np.float32) / (cin * kernel_size[0])
    return jnp.asarray(x), jnp.asarray(kernel)


SAME_3, SAME_5, VALID = ((1, 1), (1, 1)), ((2, 2), (2, 2)), ((0, 0), (0, 0))
# (batch, input h w, kernel h w, in, out, padding ((top, bottom), (left, right)))
SHAPES = {
    "lenet_c1_1ch_5x5_same": (5, (12, 12), (5, 5), 1, 6, SAME_5),
    "lenet_c3_6ch_5x5_valid": (1, (14, 14), (5, 5), 6, 16, VALID),
    "cifar_c1_3ch_3x3_same": (5, (16, 16), (3, 3), 3, 8, SAME_3),
    "cifar_c2_32ch_3x3_same": (1, (8, 8), (3, 3), 32, 16, SAME_3),
    "32ch_5x5_valid_one_output_pixel": (5, (5, 5), (5, 5), 32, 4, VALID),
    "asymmetric_3x3": (5, (7, 11), (3, 3), 6, 5, ((2, 0), (0, 1))),
    "asymmetric_beyond_a_3x2_kernel": (5, (6, 6), (3, 2), 1, 3, ((3, 0), (1, 4))),
    "beyond_a_2x2_kernel_on_the_left": (3, (5, 6), (2, 2), 2, 3, ((0, 1), (3, 0))),
}


@functools.partial(jax.jit, static_argnums=2)
def outputs_and_gradients(x, kernel, padding):
    """Each convolution's output and its two gradients for the cotangent cos(output) (the
    gradients of sum(sin(output)), which differ from pixel to pixel): ours, then XLA's."""

    def of(conv):
        out, vjp = jax.vjp(lambda x, k: conv(x, k, padding), x, kernel)
        return out, vjp(jnp.cos(out))

    return of(forward_grad_conv), of(xla_conv)


@pytest.mark.parametrize("name", SHAPES)
def test_values_and_both_gradients_match_xlas(name):
    batch, size, kernel_size, cin, cout, padding = SHAPES[name]
    x, kernel = random_inputs(batch, size, kernel_size, cin, cout)
    ours, xlas = outputs_and_gradients(x, kernel, padding)
    assert [g.shape for g in ours[1]] == [x.shape, kernel.shape]
    chex.assert_trees_all_close(ours, xlas, rtol=1e-5, atol=1e-5)


def test_bfloat16_gradients_keep_their_dtypes_and_are_as_close_as_xlas():
    x, kernel = random_inputs(6, (8, 8), (3, 3), 8, 4, seed=3)
    low = (x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16))
    (_, ours), (_, theirs) = outputs_and_gradients(*low, SAME_3)
    (_, exact), _ = outputs_and_gradients(x, kernel, SAME_3)
    for mine, xla, truth in zip(ours, theirs, exact, strict=True):
        assert mine.dtype == xla.dtype == jnp.bfloat16
        error = lambda g, truth=truth: float(jnp.max(jnp.abs(g.astype(jnp.float32) - truth)))  # noqa: E731
        assert error(mine) <= 1.1 * error(xla) + 1e-6


def test_a_scan_of_train_steps_gives_the_unscanned_steps_result():
    """The scanned epoch's case: the steps inside `lax.scan` give what the loop's steps give,
    with forward_grad's gradients and with XLA's own."""
    x, kernel = random_inputs(4, (10, 10), (3, 3), 3, 8, seed=5)
    batches = jnp.stack([x, jnp.flip(x, 2)])
    targets = jnp.asarray(np.random.default_rng(6).standard_normal((2, 4, 10, 10, 8), np.float32))

    def train_step(conv):
        def step(kernel, batch):
            images, target = batch

            def loss(kernel):
                hidden = jnp.tanh(conv(images, kernel, SAME_3))
                return jnp.mean((hidden - target) ** 2)

            value, grad = jax.value_and_grad(loss)(kernel)
            return kernel - 0.5 * grad, value

        return step

    scanned = jax.jit(lambda k: lax.scan(train_step(forward_grad_conv), k, (batches, targets)))
    result = scanned(kernel)
    for conv in (forward_grad_conv, xla_conv):
        one = jax.jit(train_step(conv))
        looped, first = one(kernel, (batches[0], targets[0]))
        looped, second = one(looped, (batches[1], targets[1]))
        expected = (looped, jnp.stack([first, second]))
        chex.assert_trees_all_close(result, expected, rtol=1e-5, atol=1e-6)
    assert not jnp.allclose(looped, kernel)  # the steps moved the kernel


def test_gradients_of_a_vmapped_population_match_xlas():
    """A population (config.replicas) vmaps the step: both operands of each gradient's
    convolution gain a batch axis."""
    x, kernel = random_inputs(4, (6, 6), (3, 3), 8, 5, seed=4)
    xs, kernels = jnp.stack([x, x + 1, x * 0.5]), jnp.stack([kernel, 2 * kernel, -kernel])
    ours, xlas = jax.vmap(lambda x, k: outputs_and_gradients(x, k, SAME_3))(xs, kernels)
    chex.assert_trees_all_close(ours, xlas, rtol=1e-5, atol=1e-5)


def test_the_drop_in_dispatches_forward_grad():
    x, kernel = random_inputs(2, (10, 10), (3, 3), 4, 5)
    conv = conv_impls.conv_general_dilated("forward_grad")
    numbers = lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)
    ours = lambda x, k: conv(x, k, (1, 1), "SAME", dimension_numbers=numbers)  # noqa: E731
    assert "custom_vjp_call" in str(jax.make_jaxpr(ours)(x, kernel))
    chex.assert_trees_all_close(ours(x, kernel), xla_conv(x, kernel, "SAME"), atol=1e-5)
