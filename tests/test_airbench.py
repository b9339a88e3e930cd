"""airbench's pieces compute what they claim: the patch layout matches a conv, the whitening
kernel decorrelates its data's patches, Dirac convs start as the identity, and the init
hook hands the model the run's own normalised training images."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lenet_jax import prng
from lenet_jax.config import load_config_file
from lenet_jax.models import get_model
from lenet_jax.models.airbench import (
    WHITEN_EPS,
    dirac_init,
    max_pool_2x2,
    patches,
    whitening_kernel,
)
from lenet_jax.training import augment, compile_options, param_groups, steps
from lenet_jax.training.run import build_run
from lenet_jax.training.run_data import load_data

REPO_CONFIG = "configs/cifar10_airbench.py"


def _conv(x, kernel, padding="VALID"):
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _correlated_images(n: int = 64, size: int = 8) -> jax.Array:
    """Images whose neighbouring pixels and channels are strongly correlated."""
    rng = np.random.default_rng(0)
    coarse = rng.normal(size=(n, size // 2, size // 2, 1))
    smooth = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)
    noise = 0.3 * rng.normal(size=(n, size, size, 3))
    return jnp.asarray(smooth * np.array([1.0, 0.8, -0.5]) + noise, jnp.float32)


def test_patches_are_laid_out_as_a_conv_kernel_reads_them():
    x = jax.random.normal(prng.key(0), (2, 5, 6, 3))
    kernel = jax.random.normal(prng.key(1), (2, 2, 3, 4))
    expected = _conv(x, kernel).reshape(-1, 4)
    chex.assert_trees_all_close(patches(x, 2) @ kernel.reshape(12, 4), expected, atol=1e-5)


def test_whitening_kernel_decorrelates_its_datas_patches():
    images = _correlated_images()
    kernel = whitening_kernel(images, 2)
    assert kernel.shape == (2, 2, 3, 24)
    out = _conv(images, kernel).reshape(-1, 24)
    covariance = out[:, :12].T @ out[:, :12] / out.shape[0]
    # Uncorrelated, each principal direction (largest first) at variance l / (l + eps).
    flat = patches(images, 2)
    raw = flat.T @ flat / flat.shape[0]
    eigenvalues = np.linalg.eigvalsh(np.asarray(raw, np.float64))[::-1]
    expected = np.diag(eigenvalues / (eigenvalues + WHITEN_EPS))
    chex.assert_trees_all_close(covariance, expected, atol=1e-4)
    assert float(eigenvalues.min()) < 0.5 < float(eigenvalues.max())  # the input was not white
    chex.assert_trees_all_close(out[:, 12:], -out[:, :12])


def test_dirac_convs_start_as_the_identity_on_their_inputs():
    kernel = dirac_init(prng.key(0), (3, 3, 4, 6))
    x = jax.random.normal(prng.key(1), (2, 5, 5, 4))
    out = _conv(x, kernel, "SAME")
    chex.assert_trees_all_close(out[..., :4], x, atol=1e-6)
    bound = 1 / np.sqrt(3 * 3 * 4)  # the other outputs: PyTorch's default uniform init
    assert 0 < float(jnp.abs(kernel[..., 4:]).max()) <= bound


def test_the_reshaped_pool_is_flaxs_max_pool_forward_and_backward():
    x = jax.random.normal(prng.key(0), (2, 7, 6, 3))  # an odd side drops its last row

    def flax_pool(x):
        return nn.max_pool(x, (2, 2), strides=(2, 2))

    chex.assert_trees_all_equal(max_pool_2x2(x), flax_pool(x))
    weights = jax.random.normal(prng.key(1), (2, 3, 3, 3))
    grads = [jax.grad(lambda x, f=f: jnp.sum(f(x) * weights))(x) for f in (max_pool_2x2, flax_pool)]
    chex.assert_trees_all_equal(*grads)
    assert int(jnp.count_nonzero(grads[0])) == weights.size  # one winner in each window


def test_airbench94_has_its_parameter_count_and_batchnorm_learns_only_shifts():
    model = get_model("airbench", widths=(64, 256, 256))
    images = jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.float32)  # shapes only: no FLOPs
    params = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)
    counts = {path: int(np.prod(p.shape)) for path, p in _flat(params["params"]).items()}
    whiten = 2 * 2 * 3 * 24 + 24
    convs = 9 * (24 * 64 + 64 * 64 + 64 * 256 + 256 * 256 + 256 * 256 + 256 * 256)
    shifts = 2 * (64 + 256 + 256)
    assert sum(counts.values()) == whiten + convs + shifts + 256 * 10 == 1_971_640
    assert not [path for path in counts if path.endswith("scale")]
    narrow = get_model("airbench", widths=(4, 8, 8))
    # Compiled for one call, as a run compiles its init: faster to compile than jax.jit's.
    variables = compile_options.run_once(
        lambda x: narrow.init(jax.random.key(0), x, train=False), jnp.ones((4, 32, 32, 3))
    )
    logits = jax.jit(lambda v, x: narrow.apply(v, x, train=False))(
        variables, jnp.ones((4, 32, 32, 3))
    )
    chex.assert_shape(logits, (4, 10))


def _flat(params) -> dict:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {param_groups.path_name(path): leaf for path, leaf in leaves}


@pytest.fixture(scope="module")
def airbench_run(tiny_mnist_dir):
    """The recipe's config on the tiny dataset, narrow, with a 64-image init. Built once for
    the module: the tests only read the run (its config, data and keys) and compile its
    functions; none changes it."""
    from conftest import tiny_config_for

    tiny_config = tiny_config_for(tiny_mnist_dir)
    config = load_config_file(REPO_CONFIG)
    for field in ("dataset", "data_dir", "batch_size", "eval_batch_size", "parallelism"):
        config[field] = tiny_config[field]
    config.model.widths = (4, 8, 8)
    config.init_images = 64
    return build_run(config)


def test_the_init_sees_the_runs_first_training_images_normalised(airbench_run):
    run = airbench_run
    seen = run.init_images()
    first = run.dataset.train_images[:64]
    chex.assert_trees_all_close(seen, steps.normalize(first, run.dataset.mean, run.dataset.std))
    state = run.init_state()
    kernel = state.params["Whiten_0"]["kernel"]
    whiten = jax.jit(whitening_kernel, static_argnums=1)  # compiled, as the init runs it
    chex.assert_trees_all_close(kernel, whiten(jnp.asarray(seen), 2), atol=1e-4)
    blank = whiten(jnp.zeros((1, 28, 28, 1)), 2)
    assert not np.allclose(kernel, blank)


def _plain_jit_init(run):
    """The run's own init function, compiled as `jax.jit` compiles by default."""
    return jax.jit(run._create_state)(run.keys["init"], run.init_images())


def test_the_runs_init_draws_plain_jits_bits_and_its_whitening_to_rounding(
    airbench_run, tiny_config
):
    """The init compiles at a lower LLVM level (it runs once). Random draws, a population's
    vmap and the EMA copy keep their bits; the data-dependent whitening differs only in
    float32 rounding (its covariance is summed in another order)."""
    tiny_config.num_replicas = 2
    tiny_config.ema_decay = 0.9
    tiny_run = build_run(tiny_config)
    chex.assert_trees_all_equal(tiny_run.init_state(), _plain_jit_init(tiny_run))
    state = _flat(airbench_run.init_state())
    expected = _flat(_plain_jit_init(airbench_run))
    assert state.keys() == expected.keys()
    for path, leaf in state.items():
        if path.endswith("Whiten_0/kernel"):  # the params' and the EMA's
            np.testing.assert_allclose(leaf, expected[path], rtol=1e-3, err_msg=path)
        else:
            np.testing.assert_array_equal(leaf, expected[path], err_msg=path)


def test_the_recipe_freezes_the_whitening_and_trains_its_bias(airbench_run):
    run = airbench_run
    state = before = run.init_state()
    step = jax.jit(run.train_step())
    images, labels = run.dataset.train_images[:64], run.dataset.train_labels[:64]
    for _ in range(2):
        state, _ = step(state, images, labels, run.keys["train"])
    old, new = _flat(before.params), _flat(state.params)
    chex.assert_trees_all_equal(new["Whiten_0/kernel"], old["Whiten_0/kernel"])
    for path in ("Whiten_0/bias", "ConvGroup_0/BatchNorm_0/bias", "ConvGroup_0/Conv_0/kernel"):
        assert not np.allclose(new[path], old[path]), path
    # airbench's fast group is BatchNorm's biases alone; the whitening bias learns at the rate
    # of the weights.
    config = run.config
    labels = _flat(
        param_groups.labels(
            state.params, freeze=config.freeze, groups=config.optimizer.param_groups
        )
    )
    fast = sorted(path for path, label in labels.items() if label == param_groups.group_label(0))
    assert fast == sorted(path for path in labels if "BatchNorm" in path and path.endswith("bias"))
    assert len(fast) == 6 and labels["Whiten_0/bias"] == param_groups.DEFAULT


def test_the_recipe_alternates_flips_from_a_fixed_mirrored_half(airbench_run):
    run = airbench_run
    loaded = load_data(run.config).train_images
    mirrored = augment.mirror_half(loaded, run.config.seed)
    np.testing.assert_array_equal(run.dataset.train_images, mirrored)
    assert not np.array_equal(mirrored, loaded)
    assert augment.make_augment(**run.config.augment) is not None  # the crop still draws
