"""Which convolution each layer runs (ops/conv.py), and the patch-matmul kernel gradient
(ops/patch_grad.py) against XLA's, in values and gradients (ops/forward_grad.py has its own
tests/test_forward_grad.py)."""

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import linen as nn
from jax import lax

from lenet_jax import config as config_lib
from lenet_jax import prng
from lenet_jax.errors import UserError
from lenet_jax.models import get_model
from lenet_jax.ops import conv as conv_impls
from lenet_jax.ops import patch_grad
from lenet_jax.training import config_checks

NHWC = ("NHWC", "HWIO", "NHWC")


def dispatched(impl):
    conv = conv_impls.conv_general_dilated(impl)

    def apply(x, kernel, padding, strides=(1, 1)):
        numbers = lax.conv_dimension_numbers(x.shape, kernel.shape, NHWC)
        return conv(x, kernel, strides, padding, dimension_numbers=numbers)

    return apply


def xla_conv(x, kernel, padding):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=NHWC)


def random_inputs(batch, size, kernel_size, cin, cout, seed=0):
    x_key, k_key = jax.random.split(prng.key(seed))
    x = jax.random.normal(x_key, (batch, *size, cin))
    return x, jax.random.normal(k_key, (*kernel_size, cin, cout)) * 0.2


def loss_of(conv):
    return lambda x, k: jnp.sum(jnp.sin(conv(x, k)))


# (batch, input h w, kernel h w, in, out, padding ((top, bottom), (left, right)))
PATCH_SHAPES = {
    "same_3x3": (5, (9, 9), (3, 3), 8, 6, ((1, 1), (1, 1))),
    "valid_5x5": (3, (12, 10), (5, 5), 9, 4, ((0, 0), (0, 0))),
    "uneven": (4, (7, 11), (3, 2), 10, 3, ((2, 0), (1, 1))),
}


@pytest.mark.parametrize("chunk", [1, 2, 64])
@pytest.mark.parametrize("name", sorted(PATCH_SHAPES))
def test_patch_grad_conv_matches_xla_in_values_and_both_gradients(name, chunk, monkeypatch):
    batch, size, kernel_size, cin, cout, padding = PATCH_SHAPES[name]
    x, kernel = random_inputs(batch, size, kernel_size, cin, cout)
    # Chunks of `chunk` examples, so the scan, its remainder and a single chunk all run.
    example_bytes = size[0] * size[1] * kernel_size[0] * kernel_size[1] * cin * 4
    monkeypatch.setattr(patch_grad, "PATCH_CHUNK_BYTES", chunk * example_bytes * 2)
    ours = jax.jit(lambda x, k: patch_grad.patch_grad_conv(x, k, padding))
    chex.assert_trees_all_close(ours(x, kernel), xla_conv(x, kernel, padding), atol=1e-5)
    grads = jax.jit(jax.grad(loss_of(ours), (0, 1)))(x, kernel)
    expected = jax.grad(loss_of(lambda x, k: xla_conv(x, k, padding)), (0, 1))(x, kernel)
    chex.assert_trees_all_close(grads, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("example_bytes", "batch", "size"),
    [(2**20, 512, 2), (3 * 2**20, 512, 1), (1000, 64, 64), (2**17, 512, 16), (0, 4, 4)],
)
def test_a_chunk_holds_about_two_mib_of_patches_and_at_most_the_batch(example_bytes, batch, size):
    assert patch_grad.chunk_size(example_bytes, batch) == size


def test_bfloat16_kernel_gradients_keep_the_kernels_dtype_and_are_as_close_as_xlas():
    x, kernel = random_inputs(6, (8, 8), (3, 3), 8, 4, seed=3)
    padding = ((1, 1), (1, 1))
    exact = jax.grad(loss_of(lambda x, k: xla_conv(x, k, padding)), 1)(x, kernel)
    low = (x.astype(jnp.bfloat16), kernel.astype(jnp.bfloat16))
    ours = jax.grad(loss_of(lambda x, k: patch_grad.patch_grad_conv(x, k, padding)), 1)(*low)
    xlas = jax.grad(loss_of(lambda x, k: xla_conv(x, k, padding)), 1)(*low)
    assert ours.dtype == xlas.dtype == jnp.bfloat16
    error = lambda g: float(jnp.max(jnp.abs(g.astype(jnp.float32) - exact)))  # noqa: E731
    assert error(ours) <= 1.1 * error(xlas)


def test_kernel_gradients_of_a_vmapped_population_match_xla():
    """A population (config.replicas) vmaps the step, and with it the scan over chunks."""
    x, kernel = random_inputs(4, (6, 6), (3, 3), 8, 5, seed=4)
    kernels = jnp.stack([kernel, 2 * kernel, -kernel])
    padding = ((1, 1), (1, 1))
    ours = jax.vmap(jax.grad(loss_of(lambda x, k: patch_grad.patch_grad_conv(x, k, padding)), 1))
    expected = jax.vmap(jax.grad(loss_of(lambda x, k: xla_conv(x, k, padding)), 1))
    xs = jnp.stack([x, x + 1, x * 0.5])
    chex.assert_trees_all_close(ours(xs, kernels), expected(xs, kernels), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("impl", "in_features", "backend", "chosen"),
    [
        ("auto", 1, "cpu", "band"),
        ("auto", 7, "cpu", "band"),
        ("auto", 8, "cpu", "forward_grad"),
        ("auto", 256, "cpu", "forward_grad"),
        ("auto", 1, "gpu", "xla"),
        ("auto", 64, "tpu", "xla"),
        ("xla", 1, "cpu", "xla"),
        ("band", 32, "cpu", "band"),
        ("patch_grad", 3, "gpu", "patch_grad"),
        ("forward_grad", 1, "cpu", "forward_grad"),
    ],
)
def test_auto_picks_the_band_for_few_channels_and_forward_grad_above_on_cpu_only(
    impl, in_features, backend, chosen
):
    assert conv_impls.chosen_impl(impl, in_features, backend) == chosen


def ran(fn, *args) -> str:
    """Which convolution a traced function runs: XLA's alone, the band, patch_grad's or
    forward_grad's (both XLA's forward pass in a custom VJP; patch_grad's kernel gradient
    scans over chunks of the batch)."""
    jaxpr = str(jax.make_jaxpr(fn)(*args))
    if "custom_vjp_call" in jaxpr and "conv_general_dilated" in jaxpr:
        loss = lambda *args: jnp.sum(fn(*args))  # noqa: E731
        backward = str(jax.make_jaxpr(jax.grad(loss, tuple(range(len(args)))))(*args))
        return "patch_grad" if "scan" in backward else "forward_grad"
    if "conv_general_dilated" in jaxpr:
        return "xla"
    return "band"


@pytest.mark.parametrize(
    ("impl", "in_features", "expected"),
    [
        ("auto", 1, "band"),
        ("auto", 7, "band"),
        ("auto", 8, "forward_grad"),
        ("patch_grad", 8, "patch_grad"),
        ("forward_grad", 1, "forward_grad"),
        ("xla", 1, "xla"),
    ],
)
def test_the_drop_in_runs_the_chosen_convolution(impl, in_features, expected):
    assert jax.default_backend() == "cpu"
    x = jnp.zeros((2, 10, 10, in_features))
    kernel = jnp.zeros((3, 3, in_features, 4))
    assert ran(lambda x, k: dispatched(impl)(x, k, "SAME"), x, kernel) == expected


@pytest.mark.parametrize("impl", ["band", "patch_grad", "forward_grad"])
def test_strided_convolutions_always_go_to_xla(impl):
    x, kernel = jnp.ones((2, 10, 10, 8)), jnp.ones((3, 3, 8, 4))
    strided = lambda x, k: dispatched(impl)(x, k, "VALID", strides=(2, 2))  # noqa: E731
    assert ran(strided, x, kernel) == "xla"
    chex.assert_trees_all_close(
        strided(x, kernel),
        lax.conv_general_dilated(x, kernel, (2, 2), "VALID", dimension_numbers=NHWC),
    )


@pytest.mark.parametrize("impl", ["band", "patch_grad", "forward_grad"])
def test_an_input_smaller_than_the_kernel_goes_to_xla(impl):
    x, kernel = jnp.ones((1, 3, 3, 1)), jnp.ones((5, 5, 1, 2))
    assert ran(lambda x, k: dispatched(impl)(x, k, "VALID"), x, kernel) == "xla"


def test_unknown_impl_is_refused():
    with pytest.raises(ValueError, match="unknown conv_impl 'fast'"):
        dispatched("fast")(jnp.ones((1, 6, 6, 1)), jnp.ones((3, 3, 1, 2)), "VALID")


@pytest.mark.parametrize(
    ("name", "impl", "kwargs"),
    [
        ("lenet_d2l", "band", {}),
        ("lenet5_1998", "band", {}),
        ("cifar_cnn_bn", "band", {}),
        ("cifar_cnn_bn", "patch_grad", {}),
        ("cifar_cnn_bn", "forward_grad", {}),
        ("airbench", "patch_grad", {"widths": (8, 16, 16)}),
    ],
)
def test_models_give_the_same_outputs_and_gradients_with_either_impl(name, impl, kwargs):
    shape = (2, 28, 28, 1) if name.startswith("lenet") else (4, 16, 16, 3)
    x = jax.random.uniform(prng.key(4), shape)
    xla = get_model(name, conv_impl="xla", **kwargs)
    ours = get_model(name, conv_impl=impl, **kwargs)
    # Compiled and abstract inits: op by op, airbench's init alone takes seconds.
    variables = jax.jit(lambda key, x: xla.init(key, x, train=False))(prng.key(5), x)
    assert jax.tree.structure(variables) == jax.tree.structure(
        jax.eval_shape(lambda key, x: ours.init(key, x, train=False), prng.key(5), x)
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
        config_checks.validate(config)


def test_flax_conv_keeps_its_parameter_names_and_shapes():
    conv = nn.Conv(6, (5, 5), padding=2, conv_general_dilated=conv_impls.conv_general_dilated())
    params = conv.init(prng.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    assert jax.tree.map(jnp.shape, params) == {"kernel": (5, 5, 1, 6), "bias": (6,)}
