"""End-to-end runs of `train_and_evaluate`: outputs, determinism, and real Fashion-MNIST."""

import json

import jax
import numpy as np
import pytest
from conftest import REPO, requires_fashion

from lenet_jax.config import load_config_file
from lenet_jax.errors import UserError
from lenet_jax.report.inference import load_run
from lenet_jax.training import keys as keys_lib
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows


def _params(workdir) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(load_run(str(workdir), "latest").state.params)]


def test_run_writes_metrics_config_and_checkpoints(tiny_config, tmp_path):
    test = trainer.train_and_evaluate(tiny_config, str(tmp_path)).test
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [(r["epoch"], r["split"]) for r in rows] == [
        (1, "train"),
        (1, "test"),
        (2, "train"),
        (2, "test"),
    ]
    assert rows[-1]["accuracy"] == test["accuracy"] and rows[-1]["step"] == 2 * (512 // 64)
    assert {"step", "epoch", "split", "loss", "accuracy"} <= set(rows[0])
    assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 64
    assert (tmp_path / "checkpoints" / "16").is_dir()
    assert test["accuracy"] > 0.5  # the tiny dataset is easy: one band of rows per class


def test_same_seed_gives_identical_params_and_another_seed_does_not(tiny_config, tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        config = tiny_config.copy_and_resolve_references()
        config.seed = seed
        config.num_epochs = 1
        trainer.train_and_evaluate(config, str(tmp_path / name))
    a, b, c = (_params(tmp_path / n) for n in "abc")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


def test_epoch_order_is_a_pure_function_of_key_and_epoch():
    keys = keys_lib.make_keys(0)
    first = keys_lib.epoch_order(keys["data"], 3, 100)
    np.testing.assert_array_equal(first, keys_lib.epoch_order(keys["data"], 3, 100))
    assert not np.array_equal(first, keys_lib.epoch_order(keys["data"], 4, 100))
    assert sorted(first) == list(range(100))


def test_batch_larger_than_the_split_is_refused(tiny_config, tmp_path):
    tiny_config.batch_size = 1024
    with pytest.raises(UserError, match=r"config.batch_size=1024 is larger than the 512"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path))


def test_nan_loss_stops_with_a_clear_error(tiny_config, tmp_path):
    tiny_config.optimizer.learning_rate = 1e30
    tiny_config.optimizer.schedule = "constant"
    tiny_config.optimizer.name = "sgd"
    with pytest.raises(UserError, match=r"train loss became nan.*learning_rate"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path))


@requires_fashion
def test_smoke_run_on_real_fashion_mnist(tmp_path):
    config = load_config_file(str(REPO / "configs" / "fashion.py:smoke"))
    config.parallelism = "single"
    test = trainer.train_and_evaluate(config, str(tmp_path)).test
    assert test["accuracy"] > 0.5  # 2 short epochs on 2,048 images; chance is 0.1
    assert len(read_rows(tmp_path / "metrics.jsonl")) == 4
