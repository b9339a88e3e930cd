"""orbax checkpoints: exact round trip, bit-identical resume, SIGTERM, damage, 8<->1 devices."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from cli_checks import error_lines, in_process
from conftest import REPO, copy_of_run, sigterm_as_epoch_starts, tiny_config_for, tiny_train_command

from lenet_jax import prng
from lenet_jax.errors import UserError
from lenet_jax.models import get_model
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.report.inference import load_run
from lenet_jax.training import checkpointing
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.state import create_train_state


def _abstract(state, sharding):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)


def _state(seed=0):
    tx = optax.sgd(0.1, momentum=0.9)
    return create_train_state(get_model("lenet_modern"), tx, prng.key(seed), (28, 28, 1))


def _assert_trees_identical(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_round_trip_is_exact(tmp_path):
    state = _state().replace(step=np.int32(7))
    with checkpointing.Checkpoints(str(tmp_path), keep=2) as ckpts:
        ckpts.save(7, state, {"loss_sum": 1.5, "accuracy_sum": 0.25, "steps": 3})
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with checkpointing.Checkpoints(str(tmp_path), keep=2) as ckpts:
        restored, loop = ckpts.restore(7, _abstract(_state(seed=1), device))
    _assert_trees_identical(restored, state)
    assert loop == {"loss_sum": 1.5, "accuracy_sum": 0.25, "steps": 3}


def test_a_checkpoint_written_through_orbaxs_older_item_handlers_restores(tmp_path):
    """Checkpoints before the handler registry were written by a manager given
    `item_handlers`: the same items, which this one reads, shapes and all."""
    state = _state().replace(step=np.int32(3))
    handlers = {"state": ocp.StandardCheckpointHandler(), "loop": ocp.JsonCheckpointHandler()}
    with ocp.CheckpointManager(str(tmp_path), item_handlers=handlers) as older:
        older.save(
            3,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), loop=ocp.args.JsonSave({"steps": 3})
            ),
        )
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with checkpointing.Checkpoints(str(tmp_path), keep=2) as ckpts:
        assert ckpts.saved_shapes(3) == checkpointing._shapes(state)
        restored, loop = ckpts.restore(3, _abstract(_state(seed=1), device))
    _assert_trees_identical(restored, state)
    assert loop == {"steps": 3}


def test_keeps_latest_n_and_the_best(tmp_path):
    state = _state()
    with checkpointing.Checkpoints(str(tmp_path), keep=2) as ckpts:
        for step, accuracy in [(1, 0.5), (2, 0.9), (3, 0.6), (4, 0.7), (5, 0.65)]:
            ckpts.save(step, state, {}, metrics={"accuracy": accuracy})
            ckpts.wait()
        assert ckpts.steps() == [2, 4, 5] and ckpts.best_step() == 2


def test_written_on_8_devices_restores_on_1_and_back(tmp_path):
    assert jax.device_count() == 8
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    state = jax.device_put(_state(), replicated)
    with checkpointing.Checkpoints(str(tmp_path / "a"), keep=1) as ckpts:
        ckpts.save(1, state, {})
    one = jax.sharding.SingleDeviceSharding(jax.devices()[3])
    with checkpointing.Checkpoints(str(tmp_path / "a"), keep=1) as ckpts:
        on_one, _ = ckpts.restore(1, _abstract(state, one))
    assert on_one.params["Dense_0"]["kernel"].sharding == one
    _assert_trees_identical(on_one, state)
    with checkpointing.Checkpoints(str(tmp_path / "b"), keep=1) as ckpts:
        ckpts.save(1, on_one, {})
    with checkpointing.Checkpoints(str(tmp_path / "b"), keep=1) as ckpts:
        on_eight, _ = ckpts.restore(1, _abstract(state, replicated))
    assert len(on_eight.params["Dense_0"]["kernel"].sharding.device_set) == 8
    _assert_trees_identical(on_eight, state)


def _without_timing(workdir) -> list[dict]:
    timing = {"examples_per_sec", "epoch_seconds"}
    return [
        {k: v for k, v in row.items() if k not in timing}
        for row in read_rows(workdir / "metrics.jsonl")
    ]


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tiny_config, tmp_path, monkeypatch):
    tiny_config.num_epochs = 3
    tiny_config.model.dropout_rate = 0.3  # exercises the replayed per-step keys
    full = trainer.train_and_evaluate(tiny_config, str(tmp_path / "full")).test

    with (
        sigterm_as_epoch_starts(monkeypatch, 1),
        pytest.raises(trainer.Preempted, match="stopped at step 9"),
    ):
        trainer.train_and_evaluate(tiny_config, str(tmp_path / "resumed"))
    rerun = trainer.train_and_evaluate(tiny_config, str(tmp_path / "resumed"))  # mid-epoch
    # It resumed: started from the step-9 checkpoint and trained only the 15 steps after it.
    assert (rerun.resumed_from, rerun.steps_trained, rerun.step) == (9, 15, 24)
    resumed = rerun.test
    assert resumed == full
    assert _without_timing(tmp_path / "resumed") == _without_timing(tmp_path / "full")
    full_params = jax.tree.leaves(load_run(str(tmp_path / "full"), "latest").state)
    resumed_params = jax.tree.leaves(load_run(str(tmp_path / "resumed"), "latest").state)
    _assert_trees_identical(full_params, resumed_params)


@pytest.fixture(scope="module")
def finished(tiny_mnist_dir, tmp_path_factory):
    """(workdir, result) of the default tiny run (`tiny_config`), trained once for the tests
    that only rerun, damage or evaluate a finished run: each works on its own copy."""
    workdir = tmp_path_factory.mktemp("finished")
    return workdir, trainer.train_and_evaluate(tiny_config_for(tiny_mnist_dir), str(workdir))


def test_rerunning_a_finished_run_trains_nothing_and_returns_its_result(
    finished, tiny_config, tmp_path
):
    first = copy_of_run(finished, tmp_path)
    again = trainer.train_and_evaluate(tiny_config, str(tmp_path))
    assert (again.resumed_from, again.steps_trained, again.step) == (first.step, 0, first.step)
    assert again.test == first.test


def test_rows_after_the_last_checkpoint_are_not_duplicated(tiny_config, tmp_path):
    tiny_config.num_epochs = 2
    tiny_config.checkpoint_every_epochs = 5  # only the final save
    trainer.train_and_evaluate(tiny_config, str(tmp_path))
    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "a") as f:  # a row written after the last checkpoint, then a crash
        f.write('{"step": 999, "epoch": 3, "split": "train", "loss": 1, "accuracy": 0}\n')
    tiny_config.num_epochs = 3
    trainer.train_and_evaluate(tiny_config, str(tmp_path))
    rows = read_rows(metrics)
    assert [r["epoch"] for r in rows] == [1, 1, 2, 2, 3, 3]


def _damage(step_dir: pathlib.Path) -> None:
    """Truncates the largest data file of a checkpoint, as a full disk or crash would."""
    files = [p for p in step_dir.rglob("*") if p.is_file()]
    victim = max(files, key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])


def test_corrupt_latest_falls_back_to_the_previous_good_one(
    finished, tiny_config, tmp_path, capsys
):
    copy_of_run(finished, tmp_path)  # 2 epochs: checkpoints 8 and 16
    _damage(tmp_path / "checkpoints" / "16")
    tiny_config.num_epochs = 3
    trainer.train_and_evaluate(tiny_config, str(tmp_path))
    out = capsys.readouterr().out
    assert "checkpoint step 16 is unreadable" in out and "resuming" in out and "from step 8" in out
    assert [p.name.split("-")[0] for p in (tmp_path / "checkpoints.corrupt").iterdir()] == ["16"]
    with checkpointing.Checkpoints(str(tmp_path / "checkpoints"), keep=2) as ckpts:
        assert ckpts.steps() == [16, 24]  # step 16 saved afresh by the resumed run


def test_all_checkpoints_corrupt_is_an_error_not_a_restart(finished, tiny_config, tmp_path):
    copy_of_run(finished, tmp_path)
    for step in ("8", "16"):
        _damage(tmp_path / "checkpoints" / step)
    rows_before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(UserError, match=r"none of the checkpoints \[8, 16\] can be read"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path))
    assert (tmp_path / "metrics.jsonl").read_text() == rows_before


def test_the_incompatibility_names_the_first_leaf_that_differs():
    saved = [("Conv_0/kernel", (5, 5, 1, 6), "float32"), ("Dense_0/bias", (10,), "float32")]
    wanted = [("Conv_0/kernel", (5, 5, 1, 6), "float32"), ("Dense_0/bias", (12,), "float32")]
    with pytest.raises(
        checkpointing.IncompatibleCheckpoint,
        match=r"'Dense_0/bias' is \(\(10,\), 'float32'\) there but \(\(12,\), 'float32'\) now",
    ):
        checkpointing.check_compatible(saved, wanted, "ckpts")
    checkpointing.check_compatible(saved, list(saved), "ckpts")  # the same: no error


def test_incompatible_workdir_names_the_mismatch_and_keeps_everything(
    finished, tiny_config, tmp_path
):
    copy_of_run(finished, tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    config_before = (tmp_path / "config.json").read_text()
    tiny_config.model.name = "lenet_jax.models.lenet:LeNet"
    tiny_config.model.kernel_init = "glorot_uniform"
    tiny_config.optimizer.name = "sgd"
    tiny_config.optimizer.momentum = 0.0  # a different optimizer state
    with pytest.raises(UserError, match=r"incompatible config: .*fresh --workdir.*optimizer.name"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "config.json").read_text() == config_before


def _train_cmd(workdir, tiny_mnist_dir, epochs):
    """The train command, with a constant learning rate: `epochs` then enters no compiled
    step, so a rerun asked for fewer epochs loads the step from the compilation cache."""
    return tiny_train_command(
        workdir,
        tiny_mnist_dir,
        "--config.parallelism=single",
        "--config.batch_size=8",
        "--config.eval_batch_size=256",
        "--config.optimizer.schedule=constant",
        f"--config.num_epochs={epochs}",
        "--config.plots=false",
    )


def test_sigterm_saves_and_a_rerun_resumes(tiny_mnist_dir, tmp_path):
    cmd = _train_cmd(tmp_path, tiny_mnist_dir, epochs=40)
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 120
    for line in proc.stdout:  # wait until training is under way (past the first epoch)
        if line.startswith("epoch 1/") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out[-2000:]
    assert "Rerun the same command to resume" in out
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and saved[-1] > 64  # a mid-epoch save at the step it stopped, after epoch 1
    rerun = subprocess.run(
        _train_cmd(tmp_path, tiny_mnist_dir, epochs=3),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming {tmp_path} from step {saved[-1]}" in rerun.stdout


def test_evaluate_reports_per_class_accuracy_and_confusion(finished, tmp_path):
    trained = copy_of_run(finished, tmp_path)
    # The reference, by hand from the final state's own predictions: rows are true classes.
    labels = trained.run.dataset.test_labels
    expected = np.zeros((10, 10), int)
    for label, predicted in zip(labels, trained.test_predictions):
        expected[label, predicted] += 1
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenet_jax.evaluate",
            f"--workdir={tmp_path}",
            "--checkpoint=latest",
            "--noplots",  # eval.json alone: the plots' own tests are in test_plots.py
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(report["confusion_matrix"], expected)
    assert report["accuracy"] == pytest.approx(np.trace(expected) / 256)
    assert set(report["per_class_accuracy"]) == {str(d) for d in range(10)}
    for d in range(10):
        hits, count = expected[d, d], (labels == d).sum()
        assert report["per_class_accuracy"][str(d)] == pytest.approx(hits / count, abs=5e-5)
    assert json.loads((tmp_path / "eval.json").read_text())["accuracy"] == report["accuracy"]
    assert not (tmp_path / "plots").exists()


def test_evaluate_bad_checkpoint_lists_the_real_ones(finished, tmp_path):
    """The command's checks in this process: a real evaluate process runs above, and its
    flags' bad values run in one of their own (test_bad_inputs)."""
    copy_of_run(finished, tmp_path)
    code, stderr = in_process(lambda: evaluate_workdir(str(tmp_path), "123"))
    message = "--checkpoint='123': no such checkpoint; available: latest, best, 8, 16"
    assert code == 2 and error_lines(stderr) == [f"error: {message}"], stderr
    with pytest.raises(UserError, match="--checkpoint='newest': no such checkpoint"):
        evaluate_workdir(str(tmp_path), "newest")


def test_evaluate_on_an_empty_workdir_is_one_line(tmp_path):
    code, stderr = in_process(lambda: evaluate_workdir(str(tmp_path)))
    assert code == 2 and "holds no run" in stderr and len(error_lines(stderr)) == 1, stderr


@pytest.mark.parametrize(
    "name, higher_is_better, best", [("loss", False, 2), ("accuracy", True, 1)]
)
def test_the_best_checkpoint_is_ranked_by_its_metrics_direction(
    name, higher_is_better, best, tmp_path
):
    """`config.best_metric`: the lowest loss, or the highest accuracy (or macro F1)."""
    values = {1: 0.5, 2: 0.3, 3: 0.4}
    with checkpointing.Checkpoints(str(tmp_path), keep=1) as ckpts:
        for step, value in values.items():
            state = {"w": np.full(2, step, np.float32)}
            ckpts.save(
                step, state, {}, metrics=checkpointing.ranking(name, value, higher_is_better)
            )
    with checkpointing.Checkpoints(str(tmp_path), keep=1, read_only=True) as ckpts:
        assert ckpts.steps() == sorted({best, 3}) and ckpts.best_step() == best
