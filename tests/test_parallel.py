"""Data parallelism on 8 fake CPU devices, and multi-host runs on loopback: same numbers."""

import json
import socket
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, child_env, tiny_train_command

from lenet_jax import prng
from lenet_jax.errors import UserError
from lenet_jax.models import get_model
from lenet_jax.report.inference import load_run
from lenet_jax.training import loop as trainer
from lenet_jax.training import parallel, steps
from lenet_jax.training.metrics_log import read_rows


def _final_params(workdir):
    return load_run(str(workdir), "latest").state.params


@pytest.fixture
def eight_device_config(tiny_config):
    assert jax.device_count() == 8
    tiny_config.batch_size = 64  # 8 per device
    tiny_config.eval_batch_size = 128
    tiny_config.model.dropout_rate = 0.0
    tiny_config.num_epochs = 1
    return tiny_config


def test_auto_picks_sharded_on_several_devices():
    assert parallel.resolve("auto") == "sharded"
    assert isinstance(parallel.create("auto"), parallel.Sharded)


@pytest.mark.parametrize("mode", ["pmap", "sharded"])
def test_batch_that_does_not_divide_over_devices_is_refused(eight_device_config, tmp_path, mode):
    eight_device_config.parallelism = mode
    eight_device_config.batch_size = 60
    with pytest.raises(UserError, match=r"config.batch_size=60 does not divide over 8 devices"):
        trainer.train_and_evaluate(eight_device_config, str(tmp_path))


def test_pmap_devices_draw_different_dropout_masks():
    model = get_model("lenet_modern", dropout_rate=0.5)
    x = jnp.ones((2, 28, 28, 1))
    variables = model.init(prng.key(0), x, train=False)

    def logits_on_each_device(key, images):
        key = steps.device_key(key, parallel.AXIS)
        return model.apply(variables, images, train=True, rngs={"dropout": key})

    same_images = jnp.broadcast_to(x, (8, *x.shape))
    pmapped = jax.pmap(logits_on_each_device, axis_name=parallel.AXIS, in_axes=(None, 0))
    out = pmapped(prng.key(1), same_images)
    assert out.shape == (8, 2, 10)
    distinct = {np.asarray(o).tobytes() for o in out}
    assert len(distinct) == 8  # the same input, a different mask per device


def test_pmap_with_dropout_is_deterministic_per_seed(eight_device_config, tmp_path):
    eight_device_config.parallelism = "pmap"
    eight_device_config.model.dropout_rate = 0.5
    first = trainer.train_and_evaluate(eight_device_config, str(tmp_path / "a")).test
    second = trainer.train_and_evaluate(eight_device_config, str(tmp_path / "b")).test
    assert first == second
    jax.tree.map(
        np.testing.assert_array_equal, _final_params(tmp_path / "a"), _final_params(tmp_path / "b")
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_cmd(workdir, data_dir, *extra):
    return tiny_train_command(
        workdir,
        data_dir,
        "--config.batch_size=64",
        "--config.eval_batch_size=128",
        "--config.num_epochs=2",
        "--config.parallelism=sharded",
        "--config.plots=false",
        *extra,
    )


def test_two_processes_on_loopback_match_one_process(tiny_config, tiny_mnist_dir, tmp_path):
    # The reference runs here, on one device (single, pmap and sharded agree, above): the
    # same data, batches and keys as the two hosts' four devices.
    tiny_config.parallelism = "single"
    trainer.train_and_evaluate(tiny_config, str(tmp_path / "one"))
    port = _free_port()
    procs = [
        subprocess.Popen(
            _train_cmd(
                tmp_path / "two",
                tiny_mnist_dir,
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ),
            cwd=REPO,
            env=child_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=300))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a multi-host process did not finish within 300 s")
    for proc, (_out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    assert "final test accuracy" in outputs[0][0] and "final test accuracy" not in outputs[1][0]
    rows_one = read_rows(tmp_path / "one" / "metrics.jsonl")
    rows_two = read_rows(tmp_path / "two" / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in rows_two] == [
        (r["step"], r["split"]) for r in rows_one
    ]
    for a, b in zip(rows_one, rows_two):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and a["accuracy"] == b["accuracy"]
    assert json.loads((tmp_path / "two" / "config.json").read_text())["parallelism"] == "sharded"
    assert not {"plots", "report.html"} & {p.name for p in (tmp_path / "two").iterdir()}
