"""Whole train steps per `model.conv_impl`, in the Python loop and inside the scanned epoch.

  .venv/bin/python scripts/scan_bench.py          # CIFAR CNN, LeNet-5 (fashion), d2l LeNet
  .venv/bin/python scripts/scan_bench.py --models cifar10 --rounds 5 --options auto
  .venv/bin/python scripts/scan_bench.py --models cifar10 --impls xla,band+forward_grad
  .venv/bin/python scripts/scan_bench.py --models airbench --noscan --loop_steps 3
  .venv/bin/python scripts/scan_bench.py --layers --impls xla,band,patch_grad,forward_grad

For each model and XLA option set (`config.cpu_compiler_options`: `auto` is
`AUTO_CPU_OPTIONS`, `xla_default` XLA's own), every impl's train step is built by the
trainer itself (`build_run`, the strategy's `compile_train`, and `steps.make_scan_epoch`
jitted as `ScannedEpoch` does), compiled, and run once untimed; then each round times,
impl after impl (the order rotating), `--loop_steps` calls of the compiled step on
pre-placed batches (donated state; one sync at the end) and one call of the scan over
`--scan_steps` batches gathered from the device-resident split. Figures are ms per step:
the median over rounds and the range.

An impl `a+b` runs `a` for layers of up to `conv.BAND_MAX_IN_FEATURES` input channels and
`b` above (`auto` with its rule replaced while the step is traced). The fashion
models read /usr/share/datasets/fashion-mnist; the CIFAR models random images of CIFAR's
shape (only shapes matter to the timing). Progress goes to stderr; stdout holds the tables.

`--layers` times single layers instead (the stock models' convolutions at their batch
sizes, through the same `nn.Conv` drop-in): the forward pass and the gradients a train step
takes (the kernel's, and the input's but for a first layer), the kernel then moved by its
gradient, as one jitted call per step and as a jitted scan over `--scan_steps` steps.
"""

import contextlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax import lax

from lenet_jax.config import load_config_file
from lenet_jax.data.dataset import Dataset
from lenet_jax.ops import conv as conv_impls
from lenet_jax.training import run as run_lib
from lenet_jax.training import steps
from lenet_jax.training.compile_options import AUTO_CPU_OPTIONS

MODELS = {  # name: (config file, whether its images are random)
    "cifar10": ("configs/cifar10.py", True),
    "fashion": ("configs/fashion.py", False),
    "fashion_d2l": ("configs/fashion_d2l.py", False),
    "airbench": ("configs/cifar10_airbench.py", True),  # seconds a step: not by default
}
_MODELS = flags.DEFINE_list("models", list(MODELS)[:3], f"Of {list(MODELS)}.")
_IMPLS = flags.DEFINE_list(
    "impls", ["xla", "band", "patch_grad", "forward_grad", "auto"], "conv_impls, or a+b mixes."
)
_OPTIONS = flags.DEFINE_list("options", ["auto", "xla_default"], "cpu_compiler_options names.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Times every impl is timed, alternating.")
_LOOP_STEPS = flags.DEFINE_integer("loop_steps", 20, "Python-loop steps timed per round.")
_SCAN_STEPS = flags.DEFINE_integer("scan_steps", 10, "Steps in the timed scan.")
_SCAN = flags.DEFINE_bool("scan", True, "Also time the scanned epoch.")
_LAYERS = flags.DEFINE_bool("layers", False, "Time the stock models' layers, not steps.")

# (label, batch, input side, kernel side, in, out, padding, first layer): the stock models'.
LAYERS = (
    ("LeNet-5 (fashion) conv 1", 128, 28, 5, 1, 6, 2, True),
    ("LeNet-5 (fashion) conv 2", 128, 14, 5, 6, 32, 0, False),
    ("d2l LeNet conv 1", 256, 28, 5, 1, 6, 2, True),
    ("d2l LeNet conv 2", 256, 14, 5, 6, 16, 0, False),
    ("CIFAR CNN conv 1", 64, 32, 3, 3, 32, 1, True),
    ("CIFAR CNN conv 2", 64, 16, 3, 32, 64, 1, False),
)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


@contextlib.contextmanager
def mixed(impl: str):
    """`auto` choosing `impl`'s halves while traced, for an `a+b` impl; nothing otherwise."""
    if "+" not in impl:
        yield impl
        return
    few, many = impl.split("+")
    original = conv_impls.chosen_impl

    def chosen(name, in_features, backend=None):
        if name != "auto":
            return original(name, in_features, backend)
        return few if in_features <= conv_impls.BAND_MAX_IN_FEATURES else many

    conv_impls.chosen_impl = chosen
    try:
        yield "auto"
    finally:
        conv_impls.chosen_impl = original


def synthetic(config, examples: int) -> Dataset:
    """Random uint8 images of CIFAR-10's shape, for timing only."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (examples, 32, 32, 3), np.uint8)
    labels = rng.integers(0, 10, examples).astype(np.int32)
    names = tuple(str(i) for i in range(10))
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    return Dataset("cifar10", images, labels, images[:64], labels[:64], names, mean, std, "random")


class Bench:
    """One impl's compiled loop step and scanned steps, with their own states."""

    def __init__(self, config, dataset: Dataset, impl: str, scan_steps: int, loop_steps: int):
        with mixed(impl) as name:
            config.model.conv_impl = name
            run = run_lib.build_run(config, dataset=dataset)
            batch = config.batch_size
            order = run.order(0)
            chunks = order[: len(order) // batch * batch].reshape(-1, batch)
            self.batches = [
                run.strategy.place_batch(dataset.train_images[i], dataset.train_labels[i])
                for i in chunks[: min(loop_steps, len(chunks))]
            ]
            self.loop_steps, self.key = loop_steps, run.keys["train"]
            self.step = run.strategy.compile_train(run.train_step())
            self.loop_state = run.init_state()
            started = time.perf_counter()
            self.time_loop(1)
            self.compile_s = {"loop": time.perf_counter() - started}
            self.time_loop(len(self.batches))  # a warm-up, untimed
            if scan_steps:
                self.scan = run.strategy.jit(
                    steps.make_scan_epoch(run.train_step()), donate_argnums=0
                )
                self.data = run.strategy.place_dataset(dataset.train_images, dataset.train_labels)
                self.indices = np.resize(chunks, (scan_steps, batch))
                self.scan_state = run.init_state()
                started = time.perf_counter()
                self.time_scan()
                self.compile_s["scan"] = time.perf_counter() - started
                self.time_scan()  # a warm-up, untimed

    def time_loop(self, steps_: int) -> float:
        state, sums = self.loop_state, None
        started = time.perf_counter()
        for i in range(steps_):
            x, y = self.batches[i % len(self.batches)]
            state, sums = self.step(state, x, y, self.key)
        jax.block_until_ready((state, sums))
        self.loop_state = state
        return (time.perf_counter() - started) / steps_

    def time_scan(self) -> float:
        started = time.perf_counter()
        self.scan_state, sums = self.scan(self.scan_state, *self.data, self.indices, self.key)
        jax.block_until_ready((self.scan_state, sums))
        return (time.perf_counter() - started) / len(self.indices)


def figure(seconds: list[float]) -> str:
    ms = [1e3 * s for s in seconds]
    return f"{statistics.median(ms):.1f} ({min(ms):.1f}-{max(ms):.1f})"


def bench_model(model: str, options: str) -> dict:
    path, random_images = MODELS[model]
    config = load_config_file(path)
    config.cpu_compiler_options = options
    if random_images:
        dataset = synthetic(config, 20 * config.batch_size)
    else:
        with contextlib.redirect_stdout(sys.stderr):  # its log line
            dataset = run_lib.load_data(config)
    benches = {}
    for impl in _IMPLS.value:
        benches[impl] = Bench(
            config.copy_and_resolve_references(),
            dataset,
            impl,
            _SCAN_STEPS.value if _SCAN.value else 0,
            _LOOP_STEPS.value,
        )
        log(f"{model} {options} {impl}: compiled (s) {benches[impl].compile_s}")
    times = {impl: {"loop": [], "scan": []} for impl in benches}
    impls = list(benches)
    for r in range(_ROUNDS.value):
        for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
            bench = benches[impl]
            times[impl]["loop"].append(bench.time_loop(bench.loop_steps))
            if _SCAN.value:
                times[impl]["scan"].append(bench.time_scan())
            log(f"{model} {options} round {r + 1} {impl}: " + ", ".join(
                f"{k} {1e3 * v[-1]:.1f} ms" for k, v in times[impl].items() if v
            ))  # fmt: skip
    return times


def layer_step(impl: str, padding: int, first: bool):
    """`step(kernel, x, grad) -> (kernel, x's gradient)`: one layer's share of a train step."""
    with mixed(impl) as name:
        conv = conv_impls.conv_general_dilated(name)
    pads = ((padding, padding), (padding, padding))

    def step(kernel, x, grad):
        def apply(x, kernel):
            numbers = lax.conv_dimension_numbers(x.shape, kernel.shape, ("NHWC", "HWIO", "NHWC"))
            return conv(x, kernel, (1, 1), pads, dimension_numbers=numbers)

        if first:  # the images: no input gradient
            _, vjp = jax.vjp(lambda k: apply(x, k), kernel)
            (grad_kernel,), grad_x = vjp(grad), jnp.zeros(())
        else:
            _, vjp = jax.vjp(apply, x, kernel)
            grad_x, grad_kernel = vjp(grad)
        return kernel - 1e-3 * grad_kernel, jnp.sum(grad_x)

    return step


def bench_layers() -> dict:
    """{label: {impl: {"loop": [seconds], "scan": [seconds]}}}, per step."""
    times = {}
    for label, batch, side, size, cin, cout, padding, first in LAYERS:
        keys = jax.random.split(jax.random.key(0), 3)
        out_side = side + 2 * padding - size + 1
        steps_ = max(_SCAN_STEPS.value, 1)
        xs = jax.random.normal(keys[0], (steps_, batch, side, side, cin))
        grads = jax.random.normal(keys[1], (steps_, batch, out_side, out_side, cout))
        kernel = jax.random.normal(keys[2], (size, size, cin, cout)) * 0.1
        programs = {}
        for impl in _IMPLS.value:
            with mixed(impl):
                step = layer_step(impl, padding, first)
                loop = jax.jit(step, compiler_options=AUTO_CPU_OPTIONS)

                def scanned(kernel, xs, grads, step=step):
                    return lax.scan(lambda kernel, xg: step(kernel, *xg), kernel, (xs, grads))

                scan = jax.jit(scanned, compiler_options=AUTO_CPU_OPTIONS)
                for _ in range(2):  # compiled (traced under `mixed`), then warm
                    jax.block_until_ready(loop(kernel, xs[0], grads[0]))
                    jax.block_until_ready(scan(kernel, xs, grads))
            programs[impl] = (loop, scan)
        times[label] = {impl: {"loop": [], "scan": []} for impl in programs}
        impls = list(programs)
        for r in range(_ROUNDS.value):
            for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
                loop, scan = programs[impl]
                started, moved = time.perf_counter(), kernel
                for i in range(_LOOP_STEPS.value):
                    moved, _ = loop(moved, xs[i % steps_], grads[i % steps_])
                jax.block_until_ready(moved)
                seconds = time.perf_counter() - started
                times[label][impl]["loop"].append(seconds / _LOOP_STEPS.value)
                started = time.perf_counter()
                jax.block_until_ready(scan(kernel, xs, grads))
                times[label][impl]["scan"].append((time.perf_counter() - started) / steps_)
        log(label, {i: {p: figure(v) for p, v in t.items()} for i, t in times[label].items()})
    return times


def print_layers(times: dict) -> None:
    print("\nsingle layers, AUTO_CPU_OPTIONS: loop | scan\n")
    print("| layer | " + " | ".join(_IMPLS.value) + " |")
    print("|---" * (len(_IMPLS.value) + 1) + "|")
    for label, per_impl in times.items():
        cells = [f"{figure(t['loop'])} \\| {figure(t['scan'])}" for t in per_impl.values()]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def main(argv):
    del argv
    if _LAYERS.value:
        print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}; ms per step, median "
              f"(range) of {_ROUNDS.value} rounds; loop: {_LOOP_STEPS.value} steps a round, "
              f"scan: {_SCAN_STEPS.value} steps a round")  # fmt: skip
        print_layers(bench_layers())
        return
    device = jax.devices()[0].device_kind
    print(
        f"{device}, jax {jax.__version__}; ms per train step, median (range) of "
        f"{_ROUNDS.value} rounds; loop: {_LOOP_STEPS.value} steps a round, "
        f"scan: {_SCAN_STEPS.value} steps a round"
    )
    for model in _MODELS.value:
        results = {options: bench_model(model, options) for options in _OPTIONS.value}
        header = [f"{part}, {options}" for options in results for part in ("loop", "scan")]
        header = [h for h in header if _SCAN.value or h.startswith("loop")]
        print(f"\n{model} ({MODELS[model][0]})\n")
        print("| conv_impl | " + " | ".join(header) + " |")
        print("|---" * (len(header) + 1) + "|")
        for impl in _IMPLS.value:
            cells = [
                figure(results[options][impl][part])
                for options in results
                for part in ("loop", "scan")
                if results[options][impl][part]
            ]
            print(f"| {impl} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    app.run(main)
