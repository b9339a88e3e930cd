"""Ordinary accidents, each for real: a second run on a busy workdir (a real lock, real
processes), files cut short (real truncation), a damaged cache entry, SIGTERM at an epoch's
last step and on one of two hosts, NaN, a full disk (a real tmpfs), and evaluate's subset."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from cli_checks import error_lines, train_checks
from conftest import (
    REPO,
    TESTS,
    child_env,
    copy_of_run,
    tiny_config_for,
    tiny_train_args,
    tiny_train_command,
)

from lenet_jax.data import cache
from lenet_jax.errors import UserError
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.report.inference import load_run
from lenet_jax.training import checkpointing, epochs, lock
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows

TIMING = ("examples_per_sec", "epoch_seconds")


def extendable(data_dir, num_epochs: int):
    """The tiny config with a constant learning rate: 2 epochs, then 1 more, equal 3. It
    evaluates on the first 128 of the 256 test examples: the subset evaluate must score."""
    config = tiny_config_for(data_dir, num_epochs=num_epochs)
    config.optimizer.schedule = "constant"
    config.num_test_examples = 128
    return config


def rows_without_timing(workdir) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in TIMING}
        for row in read_rows(workdir / "metrics.jsonl")
    ]


def run(cmd, **kwargs):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def reference(tiny_mnist_dir, tmp_path_factory):
    """An uninterrupted 3-epoch run of the tiny config: what every accident must end equal to."""

    workdir = tmp_path_factory.mktemp("uninterrupted")
    trainer.train_and_evaluate(extendable(tiny_mnist_dir, 3), str(workdir))
    return workdir


@pytest.fixture(scope="module")
def two_epochs(tiny_mnist_dir, tmp_path_factory):
    """(workdir, result) of a 2-epoch run of `extendable`, trained once for the tests that
    rerun, lock or evaluate a finished run: each works on its own copy (`copy_of_run`)."""
    workdir = tmp_path_factory.mktemp("two_epochs")
    return workdir, trainer.train_and_evaluate(extendable(tiny_mnist_dir, 2), str(workdir))


# One run per workdir.


def test_a_second_run_on_a_busy_workdir_is_refused_and_evaluate_writes_nothing(
    two_epochs, tiny_mnist_dir, tmp_path
):
    copy_of_run(two_epochs, tmp_path)
    rows_before = (tmp_path / "metrics.jsonl").read_text()
    with lock.exclusive(str(tmp_path)):  # this process is the busy run
        result = run(tiny_train_command(tmp_path, tiny_mnist_dir, "--config.num_epochs=4"))
        report = evaluate_workdir(str(tmp_path), "latest")
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert f"is in use by pid {os.getpid()} on host {socket.gethostname()}" in line
    assert (tmp_path / "metrics.jsonl").read_text() == rows_before  # nothing touched
    assert report["accuracy"] > 0 and not (tmp_path / "eval.json").exists()


def test_the_lock_dies_with_its_process(tmp_path):
    code = (
        "import os, signal, sys\n"
        "from lenet_jax.training import lock\n"
        f"with lock.exclusive({str(tmp_path)!r}):\n"
        "    print('held', flush=True); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = run([sys.executable, "-c", code])
    assert result.returncode == -signal.SIGKILL and "held" in result.stdout
    assert lock.holder(str(tmp_path)) is None
    with lock.exclusive(str(tmp_path)):
        assert lock.holder(str(tmp_path)).startswith(f"pid {os.getpid()} ")


# Files cut at any byte.


@pytest.mark.parametrize("cut", ["empty", "inside the first line", "inside the last line",
                                 "before the last newline", "deleted"])  # fmt: skip
def test_metrics_cut_anywhere_are_rebuilt_on_resume(
    cut, reference, two_epochs, tiny_mnist_dir, tmp_path
):
    first_step = copy_of_run(two_epochs, tmp_path).step
    path = tmp_path / "metrics.jsonl"
    data = path.read_bytes()
    first_newline = data.index(b"\n")
    keep = {
        "empty": 0,
        "inside the first line": first_newline // 2,
        "inside the last line": len(data) - 20,
        "before the last newline": len(data) - 1,
        "deleted": None,
    }[cut]
    if keep is None:
        path.unlink()
    else:
        path.write_bytes(data[:keep])
        read_rows(path)  # readers skip a cut last line
    rerun = trainer.train_and_evaluate(extendable(tiny_mnist_dir, 3), str(tmp_path))
    assert rerun.resumed_from == first_step  # rows rebuilt from the checkpoint, not retrained
    assert rerun.steps_trained == rerun.step - first_step
    assert rows_without_timing(tmp_path) == rows_without_timing(reference)


def test_a_damaged_cache_entry_is_removed_and_rebuilt(capsys):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(1000, dtype=np.int32)}

    cache.load_or_build("accident", build)
    path = os.path.join(cache.cache_dir(), "accident.npz")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    again = cache.load_or_build("accident", build)
    np.testing.assert_array_equal(again["x"], np.arange(1000))
    assert len(calls) == 2 and "damaged cache entry" in capsys.readouterr().err
    assert cache.load_or_build("accident", build)["x"].sum() == 499500 and len(calls) == 2


# Preemption at any moment.


def test_sigterm_at_an_epochs_last_step_finishes_that_epoch_first(
    reference, tiny_mnist_dir, tmp_path, monkeypatch
):

    config = extendable(tiny_mnist_dir, 3)
    real_update = epochs.Progress.update

    def sigterm_at_the_last_step_of_epoch_2(self, step_in_epoch, loss=None):
        if self.epoch == 2 and step_in_epoch == self.total:
            signal.raise_signal(signal.SIGTERM)
        return real_update(self, step_in_epoch, loss)

    monkeypatch.setattr(epochs.Progress, "update", sigterm_at_the_last_step_of_epoch_2)
    with pytest.raises(trainer.Preempted, match=r"stopped after epoch 2 \(step 16\); saved its"):
        trainer.train_and_evaluate(config, str(tmp_path))
    assert [(r["epoch"], r["split"]) for r in read_rows(tmp_path / "metrics.jsonl")][-2:] == [
        (2, "train"), (2, "test"),
    ]  # fmt: skip
    with checkpointing.Checkpoints(str(tmp_path / "checkpoints"), keep=2) as ckpts:
        assert ckpts.steps()[-1] == 16 and ckpts.best_step() in (8, 16)
        assert ckpts.manager.metrics(16) is not None  # it can win "best"
    monkeypatch.setattr(epochs.Progress, "update", real_update)
    trainer.train_and_evaluate(config, str(tmp_path))
    assert rows_without_timing(tmp_path) == rows_without_timing(reference)
    a = load_run(str(tmp_path), "latest").state
    b = load_run(str(reference), "latest").state
    jax.tree.map(np.testing.assert_array_equal, a, b)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_to_one_of_two_hosts_stops_both_at_the_same_step(tiny_mnist_dir, tmp_path):
    port = _free_port()
    env = child_env(1)
    procs = [
        subprocess.Popen(
            tiny_train_command(
                tmp_path,
                tiny_mnist_dir,
                "--config.batch_size=16",
                "--config.eval_batch_size=128",
                "--config.num_epochs=50",
                "--config.log_every_steps=4",
                "--config.parallelism=sharded",
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    deadline = time.time() + 180
    for line in procs[0].stdout:  # process 0 prints; wait for the first epoch to end
        if line.startswith("epoch 1/") or time.time() > deadline:
            break
    procs[1].send_signal(signal.SIGTERM)  # the other host only
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=180)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a process did not stop: the hosts did not agree on a step")
    assert [p.returncode for p in procs] == [143, 143], outputs[1][-3000:]
    stops = [
        next(line for line in out.splitlines() if line.startswith("stopped")) for out in outputs
    ]
    assert stops[0] == stops[1], stops


def test_nan_is_found_at_the_logging_step_and_no_checkpoint_holds_it(tiny_config, tmp_path):
    tiny_config.optimizer.name, tiny_config.optimizer.schedule = "sgd", "constant"
    tiny_config.optimizer.learning_rate = 1e30
    tiny_config.log_every_steps = 2
    with pytest.raises(UserError, match=r"train loss became nan by step 2 \(epoch 1\)"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path))
    assert checkpointing.committed_steps(str(tmp_path / "checkpoints")) == []


# A full disk, for real: a small tmpfs in a private mount namespace.


def _can_mount_tmpfs() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


def _full_disk_plan(data_dir, tmp_path):
    """full_disk_driver.py's plan: the run's first epoch, trained here in this process by
    the train command's own code (its exit code checked), for the driver to put on the tmpfs
    it mounts on `mount`; then the command the driver runs there, on the full and then the
    freed disk, as real processes."""
    flags = ("--config.parallelism=single", "--config.plots=false")
    first = tmp_path / "first"
    args = tiny_train_args(first, data_dir, *flags, "--config.num_epochs=1")
    code, stderr = train_checks(args, train=True)
    assert code == 0, stderr[-2000:]
    mount = tmp_path / "disk"  # seen mounted only inside the driver's namespace
    mount.mkdir()
    workdir = mount / "w"
    train = tiny_train_command(workdir, data_dir, *flags, "--config.num_epochs=3")
    plan = {"first": str(first), "mount": str(mount), "workdir": str(workdir), "train": train}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    return tmp_path / "plan.json"


@pytest.mark.requires(_can_mount_tmpfs(), "needs root and unshare -m to mount a tmpfs")
def test_a_full_disk_is_one_line_and_the_rerun_resumes_from_the_last_good_checkpoint(
    tiny_mnist_dir, tmp_path
):
    plan, out = _full_disk_plan(tiny_mnist_dir, tmp_path), tmp_path / "report.json"
    driver = [sys.executable, str(TESTS / "full_disk_driver.py"), str(plan), str(out)]
    done = subprocess.run(["unshare", "-m", *driver], cwd=TESTS, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["checkpoints_before"] == ["4"]
    full = report["full"]
    assert full["code"] == 2
    (line,) = error_lines(full["stderr"])
    assert (
        "no space left on the device of" in line and "checkpoints up to step 4 are intact" in line
    )
    after = report["after"]
    assert after["code"] == 0, after["stderr"][-2000:]
    assert "from step 4" in after["stdout"]
    assert [(r["epoch"], r["split"]) for r in report["rows"]] == [
        (e, s) for e in (1, 2, 3) for s in ("train", "test")
    ]


# evaluate says what it scored.


def test_evaluate_states_the_split_size_and_scores_the_runs_subset(two_epochs, tmp_path, capsys):
    result = copy_of_run(two_epochs, tmp_path)  # it evaluated on 128 of the 256 test examples
    whole = evaluate_workdir(str(tmp_path), "latest")
    assert whole["num_examples"] == 256
    err = capsys.readouterr().err
    assert "scored 256 test examples of 256 (the run evaluated on 128: --num_examples=128)" in err
    assert evaluate_workdir(str(tmp_path), "latest", num_examples=256)["num_examples"] == 256
    subset = evaluate_workdir(str(tmp_path), "latest", num_examples=128)
    assert subset["num_examples"] == 128 and subset["accuracy"] == result.test["accuracy"]
    with pytest.raises(UserError, match=r"--num_examples=999: expected 0 \(all\) to 256"):
        evaluate_workdir(str(tmp_path), "latest", num_examples=999)
