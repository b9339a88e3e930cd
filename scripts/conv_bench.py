"""A convolution's three parts (forward, input gradient, kernel gradient) per layer shape:
XLA's gradients against `ops/patch_grad.py`'s kernel gradient and `ops/forward_grad.py`'s
two, alternating.

  .venv/bin/python scripts/conv_bench.py    # airbench's and the CIFAR CNN's layers
  .venv/bin/python scripts/conv_bench.py --batch 256 --rounds 5 --options xla_default

Each figure is the median of `--repeats` calls after one compiling call; `--rounds`
alternates the gradients' implementations that many times per layer and reports each
one's median round. Every program is compiled with `--options`
(`config.cpu_compiler_options`: `auto` is what the trainer compiles with on the CPU).
This is the measurement behind `model.conv_impl=auto`'s choice for many-channel layers on
the CPU.
"""

import statistics
import time

import jax
from absl import app, flags
from jax import lax

from lenet_jax.ops import forward_grad, patch_grad
from lenet_jax.training import compile_options

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
_OPTIONS = flags.DEFINE_string("options", "auto", "XLA options: a cpu_compiler_options value.")
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
    """Milliseconds of each part: XLA's, and patch_grad's and forward_grad's gradients."""
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (batch, side, side, cin))
    kernel = jax.random.normal(keys[1], (3, 3, cin, cout)) * 0.1
    grad = jax.random.normal(keys[2], (batch, side, side, cout))
    options = compile_options.for_backend(_OPTIONS.value)
    jit = lambda fn: compile_options.jit(fn, options)  # noqa: E731
    forward = jit(_xla)
    input_grads = {
        "input_grad_xla": jit(lambda x, k, g: jax.vjp(lambda x: _xla(x, k), x)[1](g)[0]),
        "input_grad_forward": jit(
            lambda x, k, g: forward_grad.input_gradient(g, k, x.shape[1:3], _PADDING)
        ),
    }
    kernel_grads = {
        "kernel_grad_xla": jit(lambda x, k, g: jax.vjp(lambda k: _xla(x, k), k)[1](g)[0]),
        "kernel_grad_patch": jit(
            lambda x, k, g: patch_grad.kernel_gradient(x, g, (3, 3), _PADDING)
        ),
        "kernel_grad_forward": jit(
            lambda x, k, g: forward_grad.kernel_gradient(x, g, (3, 3), _PADDING)
        ),
    }
    parts = {**input_grads, **kernel_grads}
    rounds = {name: [] for name in parts}
    for _ in range(_ROUNDS.value):
        for name, fn in parts.items():
            rounds[name].append(_seconds(fn, x, kernel, grad))
    ms = {name: 1e3 * statistics.median(times) for name, times in rounds.items()}
    return {"forward": 1e3 * _seconds(forward, x, kernel), **ms}


def main(argv):
    del argv
    batch = _BATCH.value
    print(
        f"batch {batch}, {jax.devices()[0].device_kind}, {_ROUNDS.value} rounds, "
        f"options {_OPTIONS.value}"
    )
    print(
        "| layer | forward | input gradient, XLA | forward_grad | kernel gradient, XLA | "
        "patch_grad | forward_grad | speed-up, patch_grad | speed-up, forward_grad |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, side, cin, cout in LAYERS:
        ms = measure(side, cin, cout, batch)
        xla = ms["kernel_grad_xla"]
        print(
            f"| {label} ({side}x{side}, {cin}->{cout}) | {ms['forward']:.0f} ms | "
            f"{ms['input_grad_xla']:.0f} ms | {ms['input_grad_forward']:.0f} ms | "
            f"{xla:.0f} ms | {ms['kernel_grad_patch']:.0f} ms | "
            f"{ms['kernel_grad_forward']:.0f} ms | {xla / ms['kernel_grad_patch']:.1f}x | "
            f"{xla / ms['kernel_grad_forward']:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
