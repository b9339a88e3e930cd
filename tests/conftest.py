"""Test set-up: 8 fake CPU devices (before jax initialises), one compilation cache for the
session, and small real-format datasets."""

import atexit
import contextlib
import os
import shutil
import tempfile

# The suite asserts CPU facts (8 fake host devices, XLA:CPU's compile options): on a machine
# with a GPU, JAX would otherwise pick the GPU and those tests would fail, not run.
os.environ["JAX_PLATFORMS"] = "cpu"
_CHILD_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers share the cores: one compute thread each, not a pool each.
    _CHILD_XLA_FLAGS += " --xla_cpu_multi_thread_eigen=false"
os.environ["XLA_FLAGS"] = f"{_CHILD_XLA_FLAGS} --xla_force_host_platform_device_count=8".strip()
# Many tests compile the same small steps, in every xdist worker and in the CLI subprocesses
# they start: one private cache for the whole session, made by the process that starts it
# (the workers inherit its path) and removed when that process exits.
_SESSION_CACHE = "LENET_JAX_TEST_SESSION_CACHE"
_JAX_CACHE = os.environ.get(_SESSION_CACHE, "")
# A directory already named there is reused and left to whoever made it: the session's own
# for its xdist workers, or scripts/mutate.py's, shared by its many short pytest sessions.
if not os.path.isdir(_JAX_CACHE):
    _JAX_CACHE = tempfile.mkdtemp(prefix="lenet_jax_test_compilation_cache_")
    atexit.register(shutil.rmtree, _JAX_CACHE, ignore_errors=True)
    os.environ[_SESSION_CACHE] = _JAX_CACHE
os.environ["LENET_JAX_COMPILATION_CACHE"] = _JAX_CACHE

from lenet_jax.training import compilation_cache  # noqa: E402

compilation_cache.enable()  # before the first compilation, or JAX ignores it

import jax  # noqa: E402

jax.devices()  # the CPU backend reads XLA_FLAGS now: this process has its 8 devices
# The commands the tests start run as on a user's CPU, with one device (parallelism=auto is
# then single); a test that wants several devices in a child sets its own XLA_FLAGS.
os.environ["XLA_FLAGS"] = _CHILD_XLA_FLAGS.strip()

import gzip  # noqa: E402
import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
SHARED = REPO.parent / "shared"
FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


def child_env(devices: int, **extra: str) -> dict:
    """The environment for a child process with `devices` CPU devices. A test that compares
    a child's state bit for bit with one trained here gives it this process's 8: under
    another device count XLA:CPU's steps can differ in the last bits."""
    flags = f"{_CHILD_XLA_FLAGS} --xla_force_host_platform_device_count={devices}".strip()
    return {**os.environ, "XLA_FLAGS": flags, **extra}


def write_idx(path: pathlib.Path, array: np.ndarray, *, gz: bool = False) -> None:
    """Writes `array` (uint8) in the IDX format MNIST uses."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def make_tiny_mnist(
    directory: pathlib.Path, *, num_train: int = 512, num_test: int = 256, seed: int = 0
) -> pathlib.Path:
    """A learnable MNIST-format dataset: each class lights up its own band of rows."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", num_train), ("t10k", num_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 255
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte", labels)
    return directory


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's decoded-data cache."""
    monkeypatch.setenv("LENET_JAX_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny_mnist_dir(tmp_path_factory) -> pathlib.Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


def tiny_config_for(data_dir, *, num_epochs: int = 2):
    """A seconds-long CPU run on a `make_tiny_mnist` folder, single device."""
    from lenet_jax.config import load_config_file

    config = load_config_file(str(TESTS / "tiny_config.py:smoke"))
    config.dataset = "mnist"
    config.data_dir = str(data_dir)
    config.num_train_examples = 0
    config.num_test_examples = 0
    config.batch_size = 64
    config.eval_batch_size = 128
    config.num_epochs = num_epochs
    config.parallelism = "single"
    return config


@pytest.fixture
def tiny_config(tiny_mnist_dir):
    return tiny_config_for(tiny_mnist_dir)


# CI (which sets CI=true) installs and provides everything these tests need, so there a
# missing dataset or tool is a failure: a silent skip would hide a broken set-up.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(present, reason): skip when absent (fail instead in CI)"
    )


def pytest_unconfigure(config):
    """An xdist worker has sent its results by now: it ends without the interpreter's
    teardown of a session's worth of compiled programs, which the controller would wait
    for, as the train command ends (`lenet_jax.train.exit_now`)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from lenet_jax.train import exit_now

        atexit.register(exit_now, 0)  # registered last, so it runs first


def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires"):
        present, reason = mark.args
        if present:
            continue
        if IN_CI:
            pytest.fail(f"CI must provide this: {reason}", pytrace=False)
        pytest.skip(reason)


requires_fashion = pytest.mark.requires(
    FASHION_DIR.is_dir(), "real Fashion-MNIST absent: apt-get install dataset-fashion-mnist"
)


def copy_of_run(finished: tuple, tmp_path):
    """Copies a run trained once for a module, `(workdir, TrainResult)`, into `tmp_path`,
    for a test to rerun, damage or evaluate on its own; returns the TrainResult."""
    import shutil

    workdir, result = finished
    shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
    return result


def compiled_init(model, tx, image_shape, *, ema: bool = False):
    """`key -> TrainState` of one model with `tx` (and an EMA of its parameters with
    `ema`), compiled once, as a run compiles its init (op by op, init's many small ops would
    each compile on their own): for a test that trains one member of a population alone,
    from that member's key."""
    import jax

    from lenet_jax.training.state import create_train_state

    return jax.jit(lambda key: create_train_state(model, tx, key, image_shape, ema=ema))


def tiny_train_command(workdir, data_dir, *overrides: str) -> list[str]:
    """`python -m lenet_jax.train` for a seconds-long smoke run on a `make_tiny_mnist` folder."""
    import sys

    args = tiny_train_args(workdir, data_dir, *overrides)
    return [sys.executable, "-m", "lenet_jax.train", *args]


def tiny_train_args(workdir, data_dir, *overrides: str) -> list[str]:
    """`tiny_train_command`'s arguments: what `cli_checks.train_checks` runs in-process."""
    return [
        "--config=tests/tiny_config.py:smoke",
        f"--workdir={workdir}",
        "--config.dataset=mnist",
        f"--config.data_dir={data_dir}",
        "--config.num_train_examples=0",
        "--config.num_test_examples=0",
        *overrides,
    ]


@contextlib.contextmanager
def sigterm_as_epoch_starts(monkeypatch, epoch: int):
    """Within the block, a real SIGTERM is raised as the run asks for `epoch`'s order (its
    first step is then the last one before the stop)."""
    import signal

    from lenet_jax.training.run import Run

    real_order = Run.order

    def order(run, asked: int):
        if asked == epoch:
            signal.raise_signal(signal.SIGTERM)  # the real handler: stop after this step
        return real_order(run, asked)

    monkeypatch.setattr(Run, "order", order)
    try:
        yield
    finally:
        monkeypatch.setattr(Run, "order", real_order)
