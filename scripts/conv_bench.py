"""A convolution's three parts (forward, input gradient, kernel gradient) per layer shape,
XLA's against `ops/patch_grad.py`'s kernel gradient, alternating.

  .venv/bin/python scripts/conv_bench.py    # airbench's and the CIFAR CNN's layers
  .venv/bin/python scripts/conv_bench.py --batch 256 --rounds 5

Each figure is the median of `--repeats` calls after one compiling call; `--rounds`
alternates XLA and patch_grad that many times per layer and reports the median round.
This is the measurement behind `model.conv_impl=auto` choosing patch_grad on the CPU.
"""

import statistics
import time

import jax
from absl import app, flags
from jax import lax

from lenet_jax.ops import patch_grad

# (label, feature map side, in channels, out channels): 3x3 SAME layers.
LAYERS = (
    ("airbench (32,128,128) block 1 conv 1", 31, 24, 32),
    ("airbench (32,128,128) block 1 conv 2", 15, 32, 32),
    ("airbench (32,128,128) block 2 conv 1", 15, 32, 128),
    ("airbench (32,128,128) blocks 2-3 128->128", 7, 128, 128),
    ("airbench (64,256,256) block 1 conv 1", 31, 24, 64),
    ("airbench (64,256,256) block 2 conv 1", 15, 64, 256),
    ("airbench (64,256,256) blocks 2-3 256->256", 7, 256, 256),
    ("CIFAR CNN conv 2", 16, 32, 64),
)
_BATCH = flags.DEFINE_integer("batch", 512, "Examples per call.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Times XLA and patch_grad alternate per layer.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per figure.")
_PADDING = ((1, 1), (1, 1))


def _xla(x, kernel):
    numbers = ("NHWC", "HWIO", "NHWC")
    return lax.conv_general_dilated(x, kernel, (1, 1), _PADDING, dimension_numbers=numbers)


def _seconds(fn, *args) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(side: int, cin: int, cout: int, batch: int) -> dict[str, float]:
    """Milliseconds of each part, XLA's kernel gradient and patch_grad's."""
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (batch, side, side, cin))
    kernel = jax.random.normal(keys[1], (3, 3, cin, cout)) * 0.1
    grad = jax.random.normal(keys[2], (batch, side, side, cout))
    forward = jax.jit(_xla)
    input_grad = jax.jit(lambda x, k, g: jax.vjp(lambda x: _xla(x, k), x)[1](g)[0])
    xla_kernel_grad = jax.jit(lambda x, k, g: jax.vjp(lambda k: _xla(x, k), k)[1](g)[0])
    ours = jax.jit(lambda x, g: patch_grad.kernel_gradient(x, g, (3, 3), _PADDING))
    rounds = []
    for _ in range(_ROUNDS.value):
        rounds.append((_seconds(xla_kernel_grad, x, kernel, grad), _seconds(ours, x, grad)))
    xla_s, ours_s = sorted(rounds, key=lambda r: r[0] / r[1])[len(rounds) // 2]
    return {
        "forward": 1e3 * _seconds(forward, x, kernel),
        "input_grad": 1e3 * _seconds(input_grad, x, kernel, grad),
        "kernel_grad_xla": 1e3 * xla_s,
        "kernel_grad_patch": 1e3 * ours_s,
    }


def main(argv):
    del argv
    batch = _BATCH.value
    print(f"batch {batch}, {jax.devices()[0].device_kind}, {_ROUNDS.value} rounds")
    print("| layer | forward | input gradient | kernel gradient, XLA | patch_grad | speed-up |")
    print("|---|---|---|---|---|---|")
    for label, side, cin, cout in LAYERS:
        ms = measure(side, cin, cout, batch)
        speedup = ms["kernel_grad_xla"] / ms["kernel_grad_patch"]
        print(
            f"| {label} ({side}x{side}, {cin}->{cout}) | {ms['forward']:.0f} ms | "
            f"{ms['input_grad']:.0f} ms | {ms['kernel_grad_xla']:.0f} ms | "
            f"{ms['kernel_grad_patch']:.0f} ms | {speedup:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
