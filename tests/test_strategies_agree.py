"""Every stock config gives the same numbers on one device, under pmap and under jit sharding
(8 fake devices): BatchNorm statistics and augmentations are the global batch's everywhere."""

import pytest
from conftest import REPO, requires_fashion
from test_cifar_training import make_colour_folder

from lenet_jax.config import load_config_file
from lenet_jax.training import loop as trainer

CONFIGS = sorted(p.name for p in (REPO / "configs").glob("*.py"))
DATA = {"cifar10": "colour", "mnist": "tiny_mnist", "fashion_mnist": "debian"}
BATCH_NORM = {"fashion.py", "fashion_best.py", "cifar10_aug.py", "cifar10_airbench.py"}


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory):
    return make_colour_folder(tmp_path_factory.mktemp("colours"), per_class=(96, 48))


def _config(name: str, data_dirs: dict, num_replicas: int = 1):
    config = load_config_file(str(REPO / "configs" / f"{name}:smoke"))
    source = DATA[config.dataset]
    if source != "debian":
        config.data_dir = str(data_dirs[source])
    config.model.dropout_rate = 0.0
    config.num_train_examples, config.num_test_examples = 256, 128
    config.batch_size, config.eval_batch_size = 64, 128  # 8 examples per device
    config.num_epochs = 1
    config.num_replicas = num_replicas
    return config


def _case(name: str, num_replicas: int = 1):
    dataset = load_config_file(str(REPO / "configs" / name)).dataset
    marks = [requires_fashion] if DATA[dataset] == "debian" else []
    return pytest.param(name, num_replicas, marks=marks, id=f"{name}-{num_replicas}")


@pytest.mark.parametrize(
    "name, num_replicas", [_case(name) for name in CONFIGS] + [_case("fashion.py", 2)]
)
def test_single_pmap_and_sharded_agree(name, num_replicas, tiny_mnist_dir, colour_folder, tmp_path):
    """Dropout off (each device draws its own masks); a population too (`fashion.py-2`,
    with BatchNorm and flips: each replica's statistics and draws are the global batch's)."""
    data_dirs = {"colour": colour_folder, "tiny_mnist": tiny_mnist_dir}
    config = _config(name, data_dirs, num_replicas)
    losses = {}
    for mode in ("single", "pmap", "sharded"):
        config.parallelism = mode
        losses[mode] = trainer.train_and_evaluate(config, str(tmp_path / mode)).test["loss"]
    tolerance = 1e-4 if name in BATCH_NORM else 1e-5
    for mode in ("pmap", "sharded"):
        assert abs(losses[mode] - losses["single"]) < tolerance, losses


def test_every_config_is_covered():
    configs = {p.name: load_config_file(str(p)) for p in (REPO / "configs").glob("*.py")}
    assert {c.dataset for c in configs.values()} <= set(DATA)
    has_bn = {n for n, c in configs.items() if c.model.get("batch_norm") or "airbench" in n}
    assert has_bn <= BATCH_NORM
