"""The stock recipes give the same numbers on one device, under pmap and under jit sharding
(8 fake devices): BatchNorm statistics, augmentations, a data-dependent init and the
evaluation's transforms are the global batch's everywhere.

What can make the strategies differ is a recipe's features, not its layer widths or its
optimizer (every strategy applies the same averaged gradient): the cases below cover every
such feature of every stock config (`test_every_feature_of_every_stock_config_is_covered`),
in one model and in a population, so a new config with a new feature fails that test until
a case exercises it. A recipe whose features another case already has adds compile time, not
a check (cifar10_aug's BatchNorm, crop and flip are airbench's). The population is a sweep's:
its members differ in their values (read from the optimizer's state) as well as their keys."""

import json

import pytest
from conftest import REPO, requires_fashion
from test_cifar_training import make_colour_folder

from lenet_jax.config import load_config_file
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows

CONFIGS = sorted(p.name for p in (REPO / "configs").glob("*.py"))
DATA = {"cifar10": "colour", "mnist": "tiny_mnist", "fashion_mnist": "debian"}
BN_MODELS = {"cifar_cnn_bn", "airbench"}  # BatchNorm whatever their `batch_norm` field
# (config, population size): every feature below appears in one of these.
CASES = [
    ("cifar10.py", 1),  # none of them: the averaged gradient alone, to 1e-5
    # The default recipe, as a sweep's population: each member's values, statistics and
    # draws. Alone it would add no feature: a stock model's BatchNorm in one model is
    # airbench's case.
    ("fashion.py", 2),
    ("cifar10_airbench.py", 1),  # all of cifar10_aug.py's and more
]
SWEEP = {"optimizer.learning_rate": [1e-3, 4e-3]}  # the population's two members


def strategy_features(config, num_replicas: int = 1) -> set[str]:
    """What in a recipe crosses devices, or is drawn per example, or depends on the data."""
    augment = config.augment
    flags = {
        "batch_norm": config.model.get("batch_norm") or config.model.name in BN_MODELS,
        "flip": augment.flip,
        "flip_alternating": augment.flip_alternating,
        "crop": augment.crop_padding > 0,
        "cutout": augment.cutout_size > 0,
        f"eval_tta={config.eval_tta}": config.eval_tta != "none",
        "data_dependent_init": config.init_images > 0,
        "frozen_parameters": bool(config.freeze),
        "ema": config.ema_decay > 0,
        "lookahead": config.lookahead,
        "gradient_accumulation": config.grad_accum_steps > 1,
        "population": num_replicas > 1,
    }
    return {name for name, present in flags.items() if present}


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    return make_colour_folder(tmp_path_factory.mktemp("colours"), per_class=(96, 48))


def _config(name: str, data_dirs: dict, num_replicas: int = 1):
    config = load_config_file(str(REPO / "configs" / f"{name}:smoke"))
    source = DATA[config.dataset]
    if source != "debian":
        config.data_dir = str(data_dirs[source])
    if "dropout_rate" in config.model:
        config.model.dropout_rate = 0.0  # each device draws its own masks
    config.num_train_examples, config.num_test_examples = 256, 128
    config.batch_size, config.eval_batch_size = 64, 128  # 8 examples per device
    config.num_epochs = 1
    # XLA's convolutions, whatever `auto` picks on a CPU: a convolution is per example, so it
    # cannot make the strategies differ (test_conv.py holds the banded ones equal to XLA's),
    # and the banded ones' many slices take longest to compile of all a run's programs.
    config.model.conv_impl = "xla"
    if num_replicas > 1:
        config.sweep = json.dumps({field: values[:num_replicas] for field, values in SWEEP.items()})
    return config


def _case(name: str, num_replicas: int):
    dataset = load_config_file(str(REPO / "configs" / name)).dataset
    marks = [requires_fashion] if DATA[dataset] == "debian" else []
    return pytest.param(name, num_replicas, marks=marks, id=f"{name}-{num_replicas}")


@pytest.mark.parametrize("name, num_replicas", [_case(*case) for case in CASES])
def test_single_pmap_and_sharded_agree(name, num_replicas, tiny_mnist_dir, colour_folder, tmp_path):
    """Every row's loss, the epoch's training mean included (a test split the model gets
    exactly right, loss 0, would otherwise agree whatever the strategies did), and each
    member's in a population."""
    data_dirs = {"colour": colour_folder, "tiny_mnist": tiny_mnist_dir}
    config = _config(name, data_dirs, num_replicas)
    losses = {}
    for mode in ("single", "pmap", "sharded"):
        config.parallelism = mode
        trainer.train_and_evaluate(config, str(tmp_path / mode))
        rows = read_rows(str(tmp_path / mode / "metrics.jsonl"))
        losses[mode] = {
            (row["split"], row["step"], member): loss
            for row in rows
            for member, loss in enumerate([row["loss"], *row.get("loss_per_replica", [])])
        }
    assert any(loss > 1e-3 for loss in losses["single"].values()), losses
    tolerance = 1e-4 if "batch_norm" in strategy_features(config) else 1e-5
    for mode in ("pmap", "sharded"):
        assert losses[mode].keys() == losses["single"].keys()
        for row, loss in losses["single"].items():
            assert abs(losses[mode][row] - loss) < tolerance, (mode, row, losses)


def test_every_feature_of_every_stock_config_is_covered():
    configs = {name: load_config_file(str(REPO / "configs" / name)) for name in CONFIGS}
    assert {c.dataset for c in configs.values()} <= set(DATA)
    covered = set().union(*(strategy_features(configs[n], r) for n, r in CASES))
    for name, config in configs.items():
        missing = strategy_features(config) - covered
        assert not missing, f"{name}: no case runs {sorted(missing)} under every strategy"
    assert {"batch_norm", "population", "data_dependent_init"} <= covered
