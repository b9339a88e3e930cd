"""Model summary: per-layer shapes, parameter totals, and plain text without a terminal."""

import subprocess
import sys

import ml_collections
import pytest
from cli_checks import error_lines
from conftest import REPO

from lenet_jax import summary
from lenet_jax.config import load_config_file
from lenet_jax.errors import UserError


def config_for(model: dict, dataset: str = "fashion_mnist") -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict({"dataset": dataset, "model": model})


def test_cli_on_the_d2l_config(tmp_path):
    cmd = [sys.executable, "-m", "lenet_jax.summary", "--config=configs/fashion_d2l.py"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Conv_0 output shape: (1, 28, 28, 6)" in out
    assert "Conv_1 output shape: (1, 10, 10, 16)" in out
    assert "Dense_2 output shape: (1, 10)" in out
    assert "61,706" in out and out.rstrip().endswith("total parameters: 61,706")
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal


def test_layer_lines_come_in_call_order():
    config = load_config_file(str(REPO / "configs" / "fashion_d2l.py"))
    lines = [
        line
        for line in summary.summary(config, (28, 28, 1)).splitlines()
        if line.endswith(")") and " output shape: " in line
    ]
    assert [line.split()[0] for line in lines] == [
        "Conv_0",
        "Pool_0",  # the pooling layers, LeNet's S2 and S4: modules without parameters
        "Conv_1",
        "Pool_1",
        "Dense_0",
        "Dense_1",
        "Dropout_0",
        "Dense_2",
    ]


def test_lenet1998_on_cifar_shaped_input():
    config = config_for({"name": "lenet_jax.models.lenet1998:LeNet1998"}, "cifar10")
    text = summary.summary(config, summary.image_shape(config))
    assert "C5 output shape: (1, 1, 1, 120)" in text
    assert text.endswith(f"total parameters: {61_706 + 2 * 25 * 6:,}")


def test_batch_norm_statistics_are_counted_apart():
    config = config_for({"name": "lenet_jax.models.cifar:CifarCNN", "batch_norm": True}, "cifar10")
    text = summary.summary(config, (32, 32, 3))
    assert "BatchNorm_0 output shape: (1, 32, 32, 32)" in text
    assert text.splitlines()[-1] == "batch_stats: 192 values (not trained)"  # 2 x (32 + 64)


def test_colour_only_with_a_terminal_width():
    config = load_config_file(str(REPO / "configs" / "fashion_d2l.py"))
    assert "\x1b[" in summary.summary(config, (28, 28, 1), width=100)


def test_image_shapes():
    assert summary.image_shape(config_for({}, "mnist")) == (28, 28, 1)
    assert summary.image_shape(config_for({}, "cifar10")) == (32, 32, 3)
    assert summary.image_shape(config_for({}, "folder"), ["64", "48", "3"]) == (64, 48, 3)
    with pytest.raises(UserError, match=r"config.dataset='folder'.*--input_shape"):
        summary.image_shape(config_for({}, "folder"))
    with pytest.raises(UserError, match=r"--input_shape=28,28: expected H,W,C"):
        summary.image_shape(config_for({}, "mnist"), ["28", "28"])


def test_an_nnx_module_is_summarised_through_the_contract():
    config = config_for({"name": "fork_models.nnx_model:NnxCNN"}, "mnist")
    text = summary.summary(config, (28, 28, 1))
    params = 8 * 9 + 8 + 8 * 14 * 14 * 32 + 32 + 32 * 10 + 10 + 2 * 8  # convs, dense, BN scale+bias
    assert text.splitlines()[-2] == f"total parameters: {params:,}"
    assert text.splitlines()[-1] == "batch_stats: 16 values (not trained)"


def test_cli_bad_override_is_one_line():
    """A model field the model lacks (the other overrides share train's checks:
    tests/test_bad_inputs.py)."""
    override, message = "--config.model.widht=3", "unknown config field 'model.widht'"
    cmd = [sys.executable, "-m", "lenet_jax.summary", "--config=configs/fashion_d2l.py", override]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and message in errors[0]
