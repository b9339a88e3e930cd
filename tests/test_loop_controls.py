"""What ends or watches a run besides its epochs: early stopping, the time budget (a real
CLI run that exits 0 and resumes bit-identically), the EMA's rows and the profiler trace."""

import subprocess

import chex
import ml_collections
import pytest
from conftest import REPO, child_env, tiny_train_command

from lenet_jax.errors import UserError
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.training import cadence, checkpointing
from lenet_jax.training import loop as loop_lib
from lenet_jax.training.config_checks import validate
from lenet_jax.training.loop import train_and_evaluate
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.preemption import TimeBudgetReached


@pytest.mark.parametrize("best_metric", ["accuracy", "loss"])
def test_early_stopping_stops_with_a_checkpoint_and_a_rerun_respects_it(
    best_metric, tiny_config, tmp_path
):
    tiny_config.num_epochs = 6
    tiny_config.freeze = "."  # nothing moves: the test metrics cannot improve after epoch 1
    tiny_config.early_stopping_patience = 2
    tiny_config.best_metric = best_metric  # the loss: lower is better
    result = train_and_evaluate(tiny_config, str(tmp_path))
    assert "stopped early after epoch 3" in result.stop_reason
    assert f"test {best_metric} has not improved for 2 epochs on epoch 1's" in result.stop_reason
    assert checkpointing.committed_steps(str(tmp_path / "checkpoints"))[-1] == 24 == result.step
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows if r["split"] == "test"] == [1, 2, 3]
    again = train_and_evaluate(tiny_config, str(tmp_path))  # stops at once, trains nothing
    assert again.step == 24 and again.stop_reason
    assert read_rows(tmp_path / "metrics.jsonl") == rows
    tiny_config.early_stopping_patience = 3  # a larger patience goes on from the checkpoint
    assert train_and_evaluate(tiny_config, str(tmp_path)).step == 32


def test_the_first_best_score_follows_the_metrics_direction():
    assert cadence.first_best([0.5, 0.3, 0.3, 0.4], higher_is_better=False) == 1
    assert cadence.first_best([0.5, 0.7, 0.7, 0.4], higher_is_better=True) == 1
    assert cadence.first_best([0.5, 0.3, 0.7], higher_is_better=True) == 2


def test_due_epochs_and_the_patience_counted_from_the_first_best_evaluation():
    config = ml_collections.ConfigDict({"num_epochs": 7, "early_stopping_patience": 2})
    assert [epoch + 1 for epoch in range(7) if cadence.is_due(epoch, 3, config)] == [3, 6, 7]
    config.best_metric = "accuracy"
    rows = lambda *scores: [{"split": "test", "accuracy": s} for s in scores]  # noqa: E731
    assert cadence.early_stop_reason(rows(0.5, 0.7, 0.6), "test", config, step=3) == ""
    reason = cadence.early_stop_reason(rows(0.5, 0.7, 0.6, 0.7), "test", config, step=4)
    assert reason.startswith(
        "stopped early after epoch 4: test accuracy has not improved for 2 epochs on epoch 2's"
    )


def test_bad_values_get_one_line_naming_the_field(tiny_config):
    for field, value, message in [
        (
            "early_stopping_patience",
            0,
            r"=0 is not allowed; expected None \(never stop early\) or a positive",
        ),
        ("ema_decay", -0.1, r"config.ema_decay=-0.1 is not allowed; expected a number in \[0, 1\)"),
        ("freeze", "Conv_[", "config.freeze='Conv_\\[' is not a regular expression"),
        ("num_replicas", 0, "config.num_replicas=0 is not allowed; expected a positive"),
        ("max_train_seconds", -1.0, "config.max_train_seconds=-1.0 is not allowed"),
        ("init_exclude", "Dense_2", "unless config.init_from names the run"),
        ("lookahead", True, r"config.lookahead=True is not allowed; expected False unless"),
        ("ema_ramp", "linear", r"config.ema_ramp='linear' is not allowed; expected \['const"),
        ("eval_every_epochs", 0, "config.eval_every_epochs=0 is not allowed; expected a posi"),
        ("optimizer.decay_to", 1.5, r"config.optimizer.decay_to=1.5 is not allowed; expected a n"),
        ("augment.flip_alternating", True, r"flip_alternating=True is not allowed; expected F"),
        ("best_metric", "f1", r"config.best_metric='f1' is not allowed; expected .*'macro_f1'"),
    ]:
        config = tiny_config.copy_and_resolve_references()
        *parents, name = field.split(".")
        owner = config
        for parent in parents:
            owner = owner[parent]
        owner[name] = value
        with pytest.raises(UserError, match=message):
            validate(config)


def test_time_budget_exits_0_saves_and_a_larger_budget_resumes_bit_identically(
    tiny_mnist_dir, tiny_config, tmp_path
):
    """A population (2 replicas), so its replicated state's resume is checked too. All three
    runs train on half the tiny data (4 steps an epoch, 8 in all) and score half its test
    split: the resume from step 1 still crosses an epoch boundary."""
    overrides = [
        "--config.batch_size=64",  # as tiny_config, which the resumed and whole runs use
        "--config.eval_batch_size=128",
        "--config.num_epochs=2",
        "--config.num_train_examples=256",  # as set below for the resumed and whole runs
        "--config.num_test_examples=128",
        "--config.parallelism=single",
        "--config.num_replicas=2",
        "--config.model.dropout_rate=0.3",
    ]
    command = tiny_train_command(tmp_path / "budget", tiny_mnist_dir, *overrides)
    out = subprocess.run(
        [*command, "--config.max_train_seconds=0.001"],
        cwd=REPO,
        env=child_env(8),  # the resumed and whole runs train here, on 8 devices
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "time budget config.max_train_seconds=0.001 spent" in out.stdout
    assert "Rerun with a larger --config.max_train_seconds to continue" in out.stdout
    assert checkpointing.committed_steps(str(tmp_path / "budget" / "checkpoints")) == [1]
    tiny_config.num_replicas, tiny_config.model.dropout_rate = 2, 0.3
    tiny_config.num_train_examples, tiny_config.num_test_examples = 256, 128
    tiny_config.max_train_seconds = 0.001
    with pytest.raises(TimeBudgetReached, match="already spent"):  # no step is run
        train_and_evaluate(tiny_config, str(tmp_path / "budget"))
    tiny_config.max_train_seconds = 600.0
    resumed = train_and_evaluate(tiny_config, str(tmp_path / "budget"))
    assert resumed.resumed_from == 1 and resumed.steps_trained == resumed.step - 1
    tiny_config.max_train_seconds = 0.0
    whole = train_and_evaluate(tiny_config, str(tmp_path / "whole"))
    chex.assert_trees_all_equal(resumed.state, whole.state)
    assert resumed.test == whole.test


def test_ema_rows_rank_the_checkpoints_and_evaluate_picks_the_weights(tiny_config, tmp_path):
    tiny_config.ema_decay = 0.9
    result = train_and_evaluate(tiny_config, str(tmp_path))
    rows = read_rows(tmp_path / "metrics.jsonl")
    ema_rows = [r for r in rows if r["split"] == "test_ema"]
    assert len(ema_rows) == 2 and ema_rows[-1]["accuracy"] == result.test_ema["accuracy"]
    ema = evaluate_workdir(str(tmp_path), "latest")
    raw = evaluate_workdir(str(tmp_path), "latest", weights="raw")
    assert (ema["weights"], raw["weights"]) == ("ema", "raw")
    assert ema["accuracy"] == pytest.approx(result.test_ema["accuracy"])
    assert raw["accuracy"] == pytest.approx(result.test["accuracy"])
    assert ema["loss"] != raw["loss"]


def test_lookahead_weights_equal_to_their_average_are_evaluated_once(
    tiny_config, tmp_path, monkeypatch
):
    """With lookahead moving every step, the parameters are their average at each
    evaluation: the test_ema row is the test row, from one pass over the test split."""
    tiny_config.ema_decay = 0.9
    tiny_config.lookahead = True
    evaluated = []
    evaluate = loop_lib.Loop.evaluate
    monkeypatch.setattr(
        loop_lib.Loop, "evaluate", lambda self, state: evaluated.append(1) or evaluate(self, state)
    )
    result = train_and_evaluate(tiny_config, str(tmp_path))
    chex.assert_trees_all_equal(result.state.params, result.state.ema_params)
    rows = read_rows(tmp_path / "metrics.jsonl")
    tests = [r for r in rows if r["split"] == "test"]
    emas = [{**r, "split": "test"} for r in rows if r["split"] == "test_ema"]
    assert emas == tests and len(evaluated) == len(tests) == tiny_config.num_epochs


def test_eval_every_epochs_evaluates_when_due_and_after_the_last(tiny_config, tmp_path):
    tiny_config.num_epochs, tiny_config.eval_every_epochs = 3, 2
    result = train_and_evaluate(tiny_config, str(tmp_path))
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows if r["split"] == "train"] == [1, 2, 3]
    assert [r["epoch"] for r in rows if r["split"] == "test"] == [2, 3]
    assert rows[-1]["accuracy"] == result.test["accuracy"]
    ckpts = checkpointing.Checkpoints(str(tmp_path / "checkpoints"), keep=2, read_only=True)
    with ckpts:
        assert ckpts.best_step() in (16, 24)  # one with a test row, never epoch 1's


def test_profile_steps_writes_a_trace_where_tensorboard_finds_it(tiny_config, tmp_path):
    tiny_config.profile_steps = 2
    train_and_evaluate(tiny_config, str(tmp_path))
    traces = list((tmp_path / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0
    # Each traced step is marked, so the profile plugin can group the trace by step.
    assert b"step_num" in traces[0].read_bytes()
