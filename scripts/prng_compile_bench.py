"""Compile time of a model's init with JAX's default keys against the toolkit's (`lenet_jax.prng`,
the same Threefry bits drawn flat), side by side in one process: each model, both keys in
turn, the order alternating, several rounds; the persistent compilation cache is off.

  .venv/bin/python scripts/prng_compile_bench.py --rounds 3

Prints one line per measurement and, last, one JSON line: each model's median compile
seconds per key and their ratio.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import linen as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from lenet_jax import prng  # noqa: E402
from lenet_jax.models import get_model  # noqa: E402


class ResNetBlocks(nn.Module):
    """Residual blocks written as flax's ImageNet example writes them (3x3 convs, BatchNorm)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(16, (3, 3), use_bias=False)(x)
        for width in (16, 32, 64):
            y = nn.Conv(width, (3, 3), use_bias=False)(x)
            y = nn.relu(nn.BatchNorm(use_running_average=not train)(y))
            y = nn.Conv(width, (3, 3), use_bias=False)(y)
            x = nn.relu(y + nn.Conv(width, (1, 1), use_bias=False)(x))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


class OneConv(nn.Module):
    """A single 5x5 conv layer: its kernel is one four-dimensional draw."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Conv(16, (5, 5))(x)


MODELS = {
    "one_conv": (OneConv, (1, 14, 14, 6)),
    "lenet_modern": (lambda: get_model("lenet_modern"), (1, 28, 28, 1)),
    "cifar_cnn_bn": (lambda: get_model("cifar_cnn_bn"), (1, 32, 32, 3)),
    "airbench": (lambda: get_model("airbench"), (1, 32, 32, 3)),
    "resnet_blocks": (ResNetBlocks, (1, 32, 32, 3)),
}
KEYS = {"jax.random.key": jax.random.key, "prng.key": prng.key}


def compile_seconds(model: nn.Module, shape: tuple, make_key) -> float:
    """A fresh jit each time: nothing cached in memory, and no persistent cache is on."""
    init = jax.jit(lambda key, x: model.init(key, x, train=False))
    lowered = init.lower(make_key(0), jnp.zeros(shape))
    started = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = {name: {key: [] for key in KEYS} for name in MODELS}
    for round_ in range(args.rounds):
        for name, (build, shape) in MODELS.items():
            for key in list(KEYS)[:: 1 if round_ % 2 == 0 else -1]:
                seconds = compile_seconds(build(), shape, KEYS[key])
                figures[name][key].append(seconds)
                print(f"round {round_ + 1} {name} {key}: {seconds:.2f} s", flush=True)
    medians = {
        name: {key: round(statistics.median(values), 3) for key, values in by_key.items()}
        for name, by_key in figures.items()
    }
    ratios = {name: round(m["jax.random.key"] / m["prng.key"], 2) for name, m in medians.items()}
    print(json.dumps({"jax": jax.__version__, "median_compile_s": medians, "ratio": ratios}))


if __name__ == "__main__":
    main()
