"""Model shapes, pinned parameter counts and the registry's errors."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import pytest
from flax import linen as nn

from lenet_jax import prng
from lenet_jax.errors import UserError
from lenet_jax.models import build_model, get_model, known_models, register_model


def count_params(model: nn.Module, shape=(1, 28, 28, 1)) -> int:
    variables = model.init(prng.key(0), jnp.zeros(shape), train=False)
    return sum(x.size for x in jax.tree.leaves(variables["params"]))


@pytest.mark.parametrize("name", ["lenet_d2l", "lenet_modern"])
def test_lenet_output_shape(name):
    model = get_model(name, num_classes=10)
    x = jnp.zeros((5, 28, 28, 1))
    variables = model.init(prng.key(0), x, train=False)
    chex.assert_shape(model.apply(variables, x, train=False), (5, 10))


def test_d2l_lenet_has_61706_parameters():
    assert count_params(get_model("lenet_d2l")) == 61_706


def test_modern_lenet_has_the_same_parameters_as_classic():
    assert count_params(get_model("lenet_modern", dropout_rate=0.5)) == 61_706


def test_modern_dropout_is_active_only_in_training():
    model = get_model("lenet_modern", dropout_rate=0.5)
    x = jax.random.uniform(prng.key(1), (4, 28, 28, 1))
    variables = model.init(prng.key(0), x, train=False)
    # In eval dropout is the identity: the same weights without dropout give the same output.
    reference = get_model("lenet_modern", dropout_rate=0.0).apply(variables, x, train=False)
    eval_a = model.apply(variables, x, train=False)
    eval_b = model.apply(variables, x, train=False, rngs={"dropout": prng.key(5)})
    chex.assert_trees_all_equal(eval_a, reference)
    chex.assert_trees_all_equal(eval_b, reference)
    train_a = model.apply(variables, x, train=True, rngs={"dropout": prng.key(2)})
    train_b = model.apply(variables, x, train=True, rngs={"dropout": prng.key(3)})
    assert not jnp.allclose(train_a, train_b)


def test_unknown_model_lists_known_names():
    with pytest.raises(UserError, match="unknown model 'vgg'.*lenet_d2l"):
        get_model("vgg")


def test_build_model_rejects_a_field_the_model_lacks():
    cfg = ml_collections.ConfigDict({"name": "lenet_modern", "dropout": 0.1})
    with pytest.raises(UserError, match=r"config.model.dropout is not a field.*dropout_rate"):
        build_model(cfg, num_classes=10)


def test_build_model_passes_config_fields_and_num_classes():
    cfg = ml_collections.ConfigDict({"name": "lenet_d2l", "kernel_init": "glorot_uniform"})
    model = build_model(cfg, num_classes=7).module
    assert (model.num_classes, model.kernel_init, model.activation) == (
        7,
        "glorot_uniform",
        "sigmoid",
    )


def test_register_model_makes_a_name_available():
    register_model("tiny_test_lenet", lambda **kw: get_model("lenet_modern", **kw))
    assert "tiny_test_lenet" in known_models()
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny_test_lenet", lambda **kw: None)


def test_model_from_an_importable_module_path():
    cfg = ml_collections.ConfigDict({"name": "lenet_jax.models.lenet:LeNet", "pooling": "max"})
    assert build_model(cfg, num_classes=10).module.pooling == "max"


@pytest.mark.parametrize(
    "path, message",
    [
        ("no_such_pkg.mod:Net", "cannot import 'no_such_pkg.mod'"),
        # Functions that build a module are factories too; other attributes are refused.
        ("lenet_jax.ops.layers:ACTIVATIONS", "'ACTIVATIONS' is a dict; expected a flax.linen"),
    ],
)
def test_model_path_errors(path, message):
    with pytest.raises(UserError, match=message):
        build_model(ml_collections.ConfigDict({"name": path}), num_classes=10)


def test_unset_dropout_keeps_a_presets_own_rate():
    from lenet_jax.config import base_config

    model_config = base_config().model
    model_config.name = "cifar_cnn_dropout"
    assert build_model(model_config, num_classes=10).module.dropout_rate == 0.5
    model_config.dropout_rate = 0.1  # an explicit value still wins
    assert build_model(model_config, num_classes=10).module.dropout_rate == 0.1


def test_lenet_widths_and_batch_norm_as_configs_fashion_uses_them():
    """conv 6 (no bias) + BN 12, conv 32 (no bias) + BN 64, then dense 800-120-84-10."""
    model = get_model("lenet_modern", features=(6, 32), batch_norm=True)
    assert count_params(model) == 150 + 12 + 4_800 + 64 + 96_120 + 10_164 + 850
    variables = model.init(prng.key(0), jnp.zeros((2, 28, 28, 1)), train=False)
    assert set(variables["batch_stats"]) == {"BatchNorm_0", "BatchNorm_1"}
    assert "bias" not in variables["params"]["Conv_0"]
