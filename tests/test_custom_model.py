"""The "add your own model" walk-through works: a model from examples/ trains through the CLI."""

import json
import os
import subprocess

import chex
import jax
import jax.numpy as jnp
from conftest import REPO, tiny_train_command

from lenet_jax import prng


def test_vgg_tiny_from_examples_trains_through_the_cli(tiny_mnist_dir, tmp_path):
    workdir = tmp_path / "vgg"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "examples"), os.environ.get("PYTHONPATH", "")]),
        "LENET_JAX_CACHE": str(tmp_path / "cache"),
    }
    cmd = tiny_train_command(
        workdir,
        tiny_mnist_dir,
        "--config.parallelism=single",
        "--config.model.name=my_models.vgg_tiny:VGGTiny",
        "--config.plots=false",
        # A VGG's convolutions at 28x28 are most of the run: a quarter of the tiny dataset.
        "--config.num_train_examples=128",
        "--config.num_test_examples=64",
    )
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    tests = [row for row in rows if row["split"] == "test"]
    assert [row["epoch"] for row in tests] == [1, 2]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith(f"final test accuracy: {tests[-1]['accuracy']:.4f}")
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["name"] == "my_models.vgg_tiny:VGGTiny"


def test_vgg_tiny_shapes_and_parameter_count(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    from my_models.vgg_tiny import VGGTiny  # examples/ is not an installed package

    model = VGGTiny(num_classes=10)
    x = jnp.zeros((3, 28, 28, 1))
    variables = jax.eval_shape(lambda: model.init(prng.key(0), x, train=False))
    chex.assert_shape(jax.eval_shape(lambda v: model.apply(v, x, train=False), variables), (3, 10))
    assert sum(p.size for p in jax.tree.leaves(variables["params"])) == 218_490
