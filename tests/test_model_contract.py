"""The model contract: modules written the way forks write them train unchanged with the
stock smoke config (through the CLI where it adds something), and evaluate; a broken one
fails in one line, first."""

import json
import os
import subprocess

import jax
import numpy as np
import pytest
from conftest import REPO, tiny_train_command

from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.report.inference import load_run
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows

TESTS = REPO / "tests"


def run_cli(workdir, data_dir, model: str, *overrides: str):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = tiny_train_command(workdir, data_dir, f"--config.model.name={model}", *overrides)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "model, overrides",
    [
        ("fork_models.field_mode:FieldModeLeNet", ["--config.model.width=12"]),  # its own field
        ("fork_models.bare:Bare", ["--config.model.dropout_rate=0.2"]),  # a stock field dropped
    ],
)
def test_fork_models_train_through_the_cli_and_evaluate(model, overrides, tiny_mnist_dir, tmp_path):
    """What the command line adds: a fork's own config field, and a warning for a stock one
    its module lacks."""
    result = run_cli(tmp_path, tiny_mnist_dir, model, *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_trained_and_evaluated(tmp_path, model)
    if model.endswith("Bare"):
        assert "warning: config.model.dropout_rate=0.2 is not a field of" in result.stderr
    if model.endswith("FieldModeLeNet"):
        params = load_run(str(tmp_path), "latest").state.params
        assert params["Conv_0"]["kernel"].shape == (5, 5, 1, 12)


@pytest.mark.parametrize(
    "model",
    [
        "fork_models.tuple_output:TinyViTish",  # (logits, extras)
        "fork_models.nnx_model:NnxCNN",  # Flax NNX
    ],
)
def test_fork_models_train_unchanged_and_evaluate(model, tiny_config, tmp_path):
    """ResNetish2, whose BatchNorm reduces over the devices' axis, is trained and evaluated
    under pmap in the test below."""
    tiny_config.model.name = model
    trainer.train_and_evaluate(tiny_config, str(tmp_path))
    _check_trained_and_evaluated(tmp_path, model)


def _check_trained_and_evaluated(workdir, model: str, epochs: int = 2) -> None:
    rows = read_rows(workdir / "metrics.jsonl")
    expected = [(epoch, split) for epoch in range(1, epochs + 1) for split in ("train", "test")]
    assert [(r["epoch"], r["split"]) for r in rows] == expected
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert json.loads((workdir / "config.json").read_text())["model"]["name"] == model
    report = evaluate_workdir(str(workdir), "latest")
    assert report["accuracy"] == rows[-1]["accuracy"] and report["step"] == rows[-1]["step"]
    assert np.array(report["confusion_matrix"]).sum() == 256


def test_a_batchnorm_over_a_named_axis_agrees_under_single_pmap_and_sharded(tiny_config, tmp_path):
    tiny_config.model.name = "fork_models.partial_bn:ResNetish2"
    tiny_config.num_epochs = 1
    tiny_config.batch_size = 64  # 8 per device: per-device statistics would differ
    finals = {}
    for mode in ("single", "pmap", "sharded"):
        tiny_config.parallelism = mode
        finals[mode] = trainer.train_and_evaluate(tiny_config, str(tmp_path / mode)).state
    for mode in ("pmap", "sharded"):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5),
            finals["single"].batch_stats,
            finals[mode].batch_stats,
        )
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5),
            finals["single"].params,
            finals[mode].params,
        )
    _check_trained_and_evaluated(tmp_path / "pmap", tiny_config.model.name, epochs=1)


@pytest.mark.parametrize(
    "model, overrides, message",
    [
        (
            "fork_models.bare:Broken",
            [],
            "model 'fork_models.bare:Broken' failed at its train-mode call: TypeError",
        ),
        (
            "fork_models.field_mode:FieldModeLeNet",
            ["--config.model.widht=12"],
            "unknown config field 'model.widht': config.model.widht is not a field of",
        ),
    ],
)
def test_a_module_that_breaks_the_contract_fails_in_one_line_before_any_file(
    model, overrides, message, tiny_mnist_dir, tmp_path
):
    result = run_cli(tmp_path / "w", tiny_mnist_dir, model, *overrides)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists()


def test_importing_the_train_command_imports_no_plotting_and_no_tensorflow():
    code = (
        "import sys, lenet_jax.train\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'matplotlib', 'tensorflow', 'tensorflow_datasets'}))\n"
    )
    result = subprocess.run(
        [os.sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
