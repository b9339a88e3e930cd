"""The model contract: modules written the way forks write them train unchanged with the
stock smoke config (through the CLI where it adds something), and evaluate; a broken one
fails in one line, first."""

import json
import os
import subprocess

import chex
import jax
import numpy as np
import pytest
from cli_checks import error_lines, train_checks
from conftest import (
    REPO,
    requires_fashion,
    sigterm_as_epoch_starts,
    tiny_train_args,
    tiny_train_command,
)

from lenet_jax.config import load_config_file
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.report.inference import load_run
from lenet_jax.testing import check_model
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.run import build_run

TESTS = REPO / "tests"


def train_in_process(workdir, data_dir, model: str, *overrides: str) -> tuple[int, str]:
    """(exit code, stderr) of the train command's flag parsing, checks and whole run, in
    this process: a real process adds its exit and the absence of a traceback, which
    `run_cli` checks once (test_a_module_that_breaks_the_contract...)."""
    args = tiny_train_args(workdir, data_dir, f"--config.model.name={model}", *overrides)
    return train_checks(args, train=True)


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
    code, stderr = train_in_process(tmp_path, tiny_mnist_dir, model, *overrides)
    assert code == 0, stderr[-3000:]
    _check_trained_and_evaluated(tmp_path, model)
    if model.endswith("Bare"):
        assert "warning: config.model.dropout_rate=0.2 is not a field of" in stderr
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


def _check_trained_and_evaluated(
    workdir, model: str, epochs: int = 2, test_examples: int = 256
) -> None:
    rows = read_rows(workdir / "metrics.jsonl")
    expected = [(epoch, split) for epoch in range(1, epochs + 1) for split in ("train", "test")]
    assert [(r["epoch"], r["split"]) for r in rows] == expected
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert json.loads((workdir / "config.json").read_text())["model"]["name"] == model
    # No plots: drawn from the predictions alone, whatever the module (test_plots.py draws
    # them), they take longer than the scoring.
    report = evaluate_workdir(str(workdir), "latest", num_examples=test_examples, draw_plots=False)
    assert (workdir / "eval.json").exists() and not (workdir / "plots").exists()
    assert report["accuracy"] == rows[-1]["accuracy"] and report["step"] == rows[-1]["step"]
    assert np.array(report["confusion_matrix"]).sum() == test_examples


# Models written the ways flax's current NNX examples and big_vision write them.

NNX_IDIOMS = [
    "fork_models.nnx_idioms:CallRngsCNN",  # Dropout without rngs; rngs required at the call
    "fork_models.nnx_idioms:OptionalRngsCNN",  # rngs=None at the call; rngs positional
    "fork_models.nnx_idioms:ModeSwitchBN",  # no mode argument: train()/eval(), BatchNorm
    "fork_models.nnx_idioms:sequential_cnn",  # a function returning nnx.Sequential
]
KWARGS_FACTORY = "fork_models.kwargs_factory:Model"  # big_vision's `Model(..., **kw)`


@pytest.mark.parametrize(
    "model, fields",
    [
        ("fork_models.nnx_idioms:CallRngsCNN", {}),  # NNX, rngs at the call
        ("fork_models.nnx_idioms:ModeSwitchBN", {}),  # NNX, train()/eval() and BatchNorm
        (KWARGS_FACTORY, {"variant": "m"}),
        ("fork_models.partial_bn:ResNetish2", {}),  # linen, a partial, BatchNorm
        ("fork_models.tuple_output:TinyViTish", {}),
    ],
)
def test_fork_models_meet_the_contract_by_the_kit(model, fields):
    """The kit calls a module through the same contract as the trainer, which trains every
    idiom above and below: here, one model of each way the kit's own loop must differ."""
    report = check_model(model, fields=fields)
    assert report.losses[-1] < report.losses[0]
    if model.endswith(("ModeSwitchBN", "ResNetish2")):
        assert report.has_batch_stats


def _fashion_smoke(model: str, tmp_path):
    """The stock `configs/fashion.py:smoke` as it is (its model fields included), one epoch
    of half its examples."""
    config = load_config_file(str(REPO / "configs" / "fashion.py:smoke"))
    config.model.name = model
    config.num_epochs, config.num_train_examples = 1, 1024
    config.parallelism = "single"
    return config


@requires_fashion
@pytest.mark.parametrize("model", NNX_IDIOMS)
def test_nnx_idioms_train_with_the_stock_config_and_evaluate(model, tmp_path):
    trainer.train_and_evaluate(_fashion_smoke(model, tmp_path), str(tmp_path))
    _check_trained_and_evaluated(tmp_path, model, epochs=1, test_examples=1000)


@requires_fashion
def test_a_kwargs_factory_gets_only_the_fields_it_takes_through_the_cli(tmp_path):
    """fashion.py's `features` and `batch_norm` are dropped with a warning (the factory's
    own class has neither); `variant` and `dropout` reach it; `--config.model.X=None`
    clears a stock field."""
    code, stderr = train_checks([
        f"--config={REPO / 'configs/fashion.py'}:smoke", f"--workdir={tmp_path}",
        f"--config.model.name={KWARGS_FACTORY}", "--config.model.variant=m",
        "--config.model.dropout=0.1", "--config.model.batch_norm=None", "--config.num_epochs=1",
    ], train=True)  # fmt: skip
    assert code == 0, stderr[-3000:]
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: config.model.features=(6, 32) is not a field of {KWARGS_FACTORY!r}; not "
        "passed to it (--config.model.features=None clears it)"
    ]
    params = load_run(str(tmp_path), "latest").state.params
    assert params["Conv_1"]["kernel"].shape == (3, 3, 16, 16)  # variant "m": width 16, depth 2
    _check_trained_and_evaluated(tmp_path, KWARGS_FACTORY, epochs=1, test_examples=1000)


def test_a_kwargs_factory_gets_a_stock_field_set_on_the_command_line(tiny_mnist_dir, tmp_path):
    """`features` is a stock field (the LeNets'): the config file's would be dropped for a
    factory that does not name it, but the command line's reaches its `**kw`, and
    config.json keeps it so `evaluate` builds the same module."""
    model = "fork_models.kwargs_factory:nnx_model"
    features = "--config.model.features=(4, 8)"
    code, stderr = train_in_process(tmp_path, tiny_mnist_dir, model, features)
    assert code == 0, stderr[-3000:]
    # The config file's own stock field (tests/tiny_config.py's conv_impl) is dropped.
    (warning,) = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: config.model.conv_impl='xla' is not a field of '{model}'")
    assert json.loads((tmp_path / "config.json").read_text())["model_fields_passed"] == ["features"]
    params = load_run(str(tmp_path), "latest").state.params
    assert params["conv1"]["kernel"].shape == (3, 3, 1, 4)
    assert params["conv2"]["kernel"].shape == (3, 3, 4, 8)
    _check_trained_and_evaluated(tmp_path, model)


def test_an_nnx_model_with_dropout_resumes_bit_identically(tiny_config, tmp_path, monkeypatch):
    tiny_config.model.name = "fork_models.nnx_idioms:CallRngsCNN"
    tiny_config.num_epochs = 2
    full = trainer.train_and_evaluate(tiny_config, str(tmp_path / "full"))
    with (
        sigterm_as_epoch_starts(monkeypatch, 1),
        pytest.raises(trainer.Preempted, match="stopped at step 9"),
    ):
        trainer.train_and_evaluate(tiny_config, str(tmp_path / "resumed"))
    resumed = trainer.train_and_evaluate(tiny_config, str(tmp_path / "resumed"))
    assert (resumed.resumed_from, resumed.steps_trained) == (9, 7)
    chex.assert_trees_all_equal(resumed.state, full.state)
    assert resumed.test == full.test


def test_a_batchnorm_without_an_axis_warns_under_pmap_only(tiny_config, capsys):
    tiny_config.model.name = "fork_models.nnx_idioms:ModeSwitchBN"  # nnx.BatchNorm, no axis
    tiny_config.batch_size = 64
    for mode in ("single", "sharded", "pmap"):
        tiny_config.parallelism = mode
        build_run(tiny_config)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "no axis" in line]
    assert warnings == [
        "warning: model 'fork_models.nnx_idioms:ModeSwitchBN' keeps batch statistics but "
        "averages them over no axis: under pmap each device normalises its own slice of the "
        "batch, so the numbers differ from single and sharded runs; give its BatchNorm an "
        "axis_name (pmap's device axis then takes that name)"
    ]
    tiny_config.model.name = "lenet_modern"  # a stock model syncs its statistics: no warning
    tiny_config.model.batch_norm = True
    build_run(tiny_config)
    assert "no axis" not in capsys.readouterr().err


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
            "fork_models.nnx_idioms:NoRngsAnywhere",
            [],
            "failed at its train-mode call: ValueError: `deterministic` is False, but no "
            "`rngs` argument was provided to Dropout; the contract gives RNG streams to an "
            "`rngs` argument of __call__",
        ),
        (
            "fork_models.nnx_idioms:NeedsAMask",
            [],
            "failed at its eval-mode call: TypeError: NeedsAMask.__call__() missing 1 required "
            "positional argument: 'mask'; the contract calls a module with the images and",
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
    """The first case in a real process (exit code, stderr, no traceback); the others run
    the same flag parsing and checks in this one."""
    if model == "fork_models.bare:Broken":
        result = run_cli(tmp_path / "w", tiny_mnist_dir, model, *overrides)
        code, stderr = result.returncode, result.stderr
        assert "Traceback" not in stderr
    else:
        args = tiny_train_args(tmp_path / "w", tiny_mnist_dir, f"--config.model.name={model}")
        code, stderr = train_checks([*args, *overrides])
    assert code == 2, stderr[-3000:]
    errors = error_lines(stderr)
    assert len(errors) == 1 and message in errors[0], stderr[-3000:]
    assert not (tmp_path / "w").exists()
