"""The accelerator path, exercised on CPU: a scanned epoch over device-resident data, bf16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lenet_jax.errors import UserError
from lenet_jax.report.inference import load_run
from lenet_jax.training import epochs, parallel
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows


def test_scanned_epochs_match_the_python_loop(tiny_config, tmp_path):
    tiny_config.model.dropout_rate = 0.3  # the same per-step keys in both loops
    results = {}
    for loop in ("python", "scan"):
        tiny_config.epoch_loop = loop
        results[loop] = trainer.train_and_evaluate(tiny_config, str(tmp_path / loop)).test
    assert results["scan"]["loss"] == pytest.approx(results["python"]["loss"], abs=1e-4)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
        load_run(str(tmp_path / "python"), "latest").state.params,
        load_run(str(tmp_path / "scan"), "latest").state.params,
    )
    rows = read_rows(tmp_path / "scan" / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in rows] == [
        (8, "train"),
        (8, "test"),
        (16, "train"),
        (16, "test"),
    ]


def test_auto_uses_the_python_loop_on_cpu():
    assert epochs.resolve_epoch_loop("auto", parallel.Strategy()) == "python"


def test_scan_with_pmap_is_refused(tiny_config, tmp_path):
    tiny_config.epoch_loop = "scan"
    tiny_config.parallelism = "pmap"
    with pytest.raises(UserError, match=r"config.epoch_loop='scan' runs on one device"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path))


def test_bfloat16_compute_trains_with_float32_parameters(tiny_config, tmp_path):
    tiny_config.compute_dtype = "bfloat16"
    test = trainer.train_and_evaluate(tiny_config, str(tmp_path)).test
    params = load_run(str(tmp_path), "latest").state.params
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    assert test["accuracy"] > 0.5


def test_bfloat16_needs_a_model_with_a_dtype_field(tiny_config, tmp_path):
    tiny_config.compute_dtype = "bfloat16"
    tiny_config.model.name = "lenet5_1998"
    with pytest.raises(UserError, match=r"compute_dtype='bfloat16' needs a model with a `dtype`"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path))
