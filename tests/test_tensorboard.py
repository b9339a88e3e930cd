"""TensorBoard events: tags, values and steps read back; resume purges; disabled writes nothing."""

import os

import pytest

from lenet_jax.training.tensorboard import TensorBoardWriter, read_scalars


def event_files(workdir) -> list[str]:
    logdir = os.path.join(workdir, "tensorboard")
    return sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []


def test_scalars_are_written_and_read_back(tmp_path):
    with TensorBoardWriter(str(tmp_path)) as writer:
        writer.write_scalars(100, "train", {"loss": 0.5, "accuracy": 0.75, "learning_rate": 1e-3})
        writer.write_scalars(100, "test", {"loss": 0.625, "accuracy": 0.5})
        writer.write_scalars(200, "train", {"loss": 0.25, "accuracy": 0.875, "learning_rate": 0})
    files = event_files(tmp_path)
    assert len(files) == 1 and files[0].startswith("events.out.tfevents.")
    data = (tmp_path / "tensorboard" / files[0]).read_bytes()
    assert b"train/loss" in data and b"test/accuracy" in data
    scalars = read_scalars(str(tmp_path / "tensorboard"))
    assert set(scalars) == {
        "train/loss",
        "train/accuracy",
        "train/learning_rate",
        "test/loss",
        "test/accuracy",
    }
    assert scalars["train/loss"] == [(100, 0.5), (200, 0.25)]
    assert scalars["test/accuracy"] == [(100, 0.5)]
    assert scalars["train/learning_rate"] == [(100, pytest.approx(1e-3)), (200, 0.0)]


def test_a_resumed_run_hides_what_was_written_after_its_checkpoint(tmp_path):
    with TensorBoardWriter(str(tmp_path)) as writer:
        for step in (10, 20, 30):
            writer.write_scalars(step, "test", {"accuracy": step / 100})
    with TensorBoardWriter(str(tmp_path), resume_step=20) as writer:  # restored at step 20
        writer.write_scalars(30, "test", {"accuracy": 0.875})
        writer.write_scalars(40, "test", {"accuracy": 0.5})
    assert len(event_files(tmp_path)) == 2
    points = read_scalars(str(tmp_path / "tensorboard"))["test/accuracy"]
    assert points == [(10, pytest.approx(0.1)), (20, pytest.approx(0.2)), (30, 0.875), (40, 0.5)]


def test_disabled_writer_creates_nothing(tmp_path):
    with TensorBoardWriter(str(tmp_path), enabled=False) as writer:
        assert not writer.enabled
        writer.write_scalars(1, "train", {"loss": 1.0})
        writer.flush()
    assert not (tmp_path / "tensorboard").exists()


def test_flush_makes_events_visible_before_close(tmp_path):
    writer = TensorBoardWriter(str(tmp_path))
    writer.write_scalars(5, "train", {"loss": 2.0})
    writer.flush()
    assert read_scalars(str(tmp_path / "tensorboard")) == {"train/loss": [(5, 2.0)]}
    writer.close()
    writer.close()  # closing twice is harmless
