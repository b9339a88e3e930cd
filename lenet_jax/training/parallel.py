"""How a step runs on the devices: one device, pmap, or jit over a 1-D `data` mesh.

Each strategy places the state, splits this process's share of a global batch over its
local devices and compiles the steps. Checkpoints always hold the plain, unreplicated
state, so a run saved under one strategy or device count restores under any other.
What a strategy can do is asked of it (`holds_dataset`, `axis_name`), never read off
its name.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lenet_jax.errors import UserError
from lenet_jax.training import compile_options

AXIS = "data"  # the mesh axis name, and the pmap axis name unless the model names its own


def resolve(parallelism: str) -> str:
    """`auto` means sharded on several devices, single on one."""
    if parallelism == "auto":
        return "sharded" if jax.device_count() > 1 else "single"
    return parallelism


def check_divisible(batch_size: int, field: str, *, num_devices: int, num_local: int) -> None:
    if batch_size % num_devices:
        raise UserError(
            f"config.{field}={batch_size} does not divide over {num_devices} devices; "
            f"use a multiple of {num_devices}"
        )
    if batch_size // jax.process_count() % num_local:
        raise UserError(
            f"config.{field}={batch_size}: each of {jax.process_count()} processes gets "
            f"{batch_size // jax.process_count()} examples, not divisible over its "
            f"{num_local} local devices"
        )


@dataclasses.dataclass
class Strategy:
    """Single-device execution; the base the data-parallel strategies override."""

    name: str = "single"
    axis_name: str | None = None  # set where the step must average over devices itself
    # Whether a whole split can live on the device for the scanned epoch (`place_dataset`).
    holds_dataset: bool = True
    # XLA options every step is compiled with (`compile_options.for_backend`).
    compiler_options: dict = dataclasses.field(default_factory=dict)

    @property
    def num_devices(self) -> int:
        return 1

    def place_dataset(self, *arrays: np.ndarray):
        """Whole arrays on the strategy's device, for a step that gathers its own batches."""
        return jax.device_put(arrays, jax.devices()[0])

    def check_batch(self, batch_size: int, field: str) -> None:
        check_divisible(batch_size, field, num_devices=self.num_devices, num_local=self.num_devices)

    def process_slice(self, batch_size: int) -> slice:
        """This process's share of a global batch of `batch_size` examples."""
        share = batch_size // jax.process_count()
        return slice(jax.process_index() * share, (jax.process_index() + 1) * share)

    def place_state(self, state):
        return jax.device_put(state, jax.devices()[0])

    def host_state(self, state):
        """The plain state as saved in checkpoints."""
        return state

    def state_sharding(self):
        return jax.sharding.SingleDeviceSharding(jax.devices()[0])

    def place_batch(self, *arrays: np.ndarray):
        return tuple(jnp.asarray(a) for a in arrays)

    def jit(self, fn: Callable, **kwargs) -> Callable:
        """`jax.jit` with the strategy's compile options: for any program a run compiles."""
        return compile_options.jit(fn, self.compiler_options, **kwargs)

    def compile_train(self, step: Callable) -> Callable:
        return self.jit(step, donate_argnums=0)

    def compile_eval(self, step: Callable) -> Callable:
        """`eval(state, images, labels, mask) -> (global sums, this batch's predictions)`."""
        return self.jit(step)


def _local_device_axis() -> tuple[int, NamedSharding]:
    """(local device count, the sharding that puts slice i of a leading axis on device i)."""
    devices = jax.local_devices()
    return len(devices), NamedSharding(Mesh(np.array(devices), (AXIS,)), P(AXIS))


@dataclasses.dataclass
class Pmap(Strategy):
    """State replicated per local device; the batch gets a leading device axis."""

    name: str = "pmap"
    axis_name: str | None = AXIS  # a model's BatchNorm `axis_name` replaces it (`create`)
    holds_dataset: bool = False

    @property
    def num_devices(self) -> int:
        return jax.device_count()

    def check_batch(self, batch_size: int, field: str) -> None:
        check_divisible(
            batch_size, field, num_devices=self.num_devices, num_local=jax.local_device_count()
        )

    def place_state(self, state):
        """A copy per local device, stacked on the host: flax's `replicate` stacks each
        leaf with an eager op, which compiles once per leaf shape (seconds per run)."""
        n, sharding = _local_device_axis()
        host = jax.device_get(state)
        return jax.tree.map(lambda x: jax.device_put(np.stack([np.asarray(x)] * n), sharding), host)

    def host_state(self, state):
        """Device 0's copy, read through the host: flax's `unreplicate` slices each leaf with
        an eager op, which compiles once per leaf shape, like `replicate`."""
        device = jax.local_devices()[0]
        return jax.tree.map(
            lambda x: jax.device_put(np.asarray(x.addressable_data(0))[0], device), state
        )

    def place_batch(self, *arrays: np.ndarray):
        """On this process's devices now, one slice of the leading device axis on each."""
        n, sharding = _local_device_axis()
        return tuple(
            jax.device_put(a.reshape((n, a.shape[0] // n, *a.shape[1:])), sharding) for a in arrays
        )

    def compile_train(self, step: Callable) -> Callable:
        compiled = compile_options.pmap(
            step,
            self.compiler_options,
            axis_name=self.axis_name,
            in_axes=(0, 0, 0, None),
            donate_argnums=0,
        )

        def train_step(state, images, labels, key):
            state, metrics = compiled(state, images, labels, key)
            return state, jax.tree.map(lambda m: m[0], metrics)

        return train_step

    def compile_eval(self, step: Callable) -> Callable:
        axis = self.axis_name

        def summed_step(*args):
            sums, predictions = step(*args)
            return jax.lax.psum(sums, axis), predictions

        summed = compile_options.pmap(summed_step, self.compiler_options, axis_name=axis)

        def eval_step(*args):
            sums, predictions = summed(*args)
            return jax.tree.map(lambda m: m[0], sums), predictions.reshape(-1)

        return eval_step


@dataclasses.dataclass
class Sharded(Strategy):
    """jit over a 1-D `data` mesh: state replicated, batch sharded, single-device code."""

    name: str = "sharded"
    holds_dataset: bool = False
    mesh: Mesh = dataclasses.field(default_factory=lambda: Mesh(np.array(jax.devices()), (AXIS,)))

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    def check_batch(self, batch_size: int, field: str) -> None:
        check_divisible(
            batch_size, field, num_devices=self.num_devices, num_local=jax.local_device_count()
        )

    def state_sharding(self):
        return NamedSharding(self.mesh, P())

    def place_state(self, state):
        # A copy first: device_put may alias its input, and the step donates the state.
        return jax.device_put(jax.tree.map(np.array, state), self.state_sharding())

    def host_state(self, state):
        """One process: the copy on its first device. orbax saves a replicated array by
        cutting it into one slice per device, and each cut compiles once per leaf shape.
        Several processes keep the global arrays, whose save orbax shares between them."""
        if jax.process_count() > 1:
            return state
        return jax.tree.map(lambda x: x.addressable_data(0), state)

    def place_batch(self, *arrays: np.ndarray):
        sharding = NamedSharding(self.mesh, P(AXIS))
        return tuple(jax.make_array_from_process_local_data(sharding, a) for a in arrays)

    def compile_train(self, step: Callable) -> Callable:
        replicated = self.state_sharding()
        return self.jit(step, out_shardings=(replicated, replicated), donate_argnums=0)

    def compile_eval(self, step: Callable) -> Callable:
        replicated = self.state_sharding()
        return self.jit(step, out_shardings=(replicated, replicated))


STRATEGIES: dict[str, type[Strategy]] = {"single": Strategy, "pmap": Pmap, "sharded": Sharded}
PARALLELISM = ("auto", *STRATEGIES)  # what config.parallelism accepts


def create(
    parallelism: str, model_axes: tuple[str, ...] = (), *, compiler_options: dict | None = None
) -> Strategy:
    """The strategy `parallelism` names, compiling with `compiler_options`; under pmap, the
    model's collective axis names it.

    A model whose BatchNorm averages over `axis_name="batch"` (flax's imagenet example)
    then averages over the devices, as it was written to; single and sharded bind that
    axis with size 1 instead (under jit sharding the batch statistics are already global).
    """
    name = resolve(parallelism)
    if name == "single" and jax.process_count() > 1:
        raise UserError(
            f"config.parallelism={parallelism!r} runs on one device, but this run has "
            f"{jax.process_count()} processes; use 'sharded' or 'pmap'"
        )
    options = dict(compiler_options or {})
    if name != "pmap":
        return STRATEGIES[name](compiler_options=options)
    if len(model_axes) > 1:
        raise UserError(
            f"config.parallelism='pmap': the model averages over several axes {list(model_axes)}; "
            "pmap has one; use parallelism=sharded"
        )
    return Pmap(axis_name=model_axes[0] if model_axes else AXIS, compiler_options=options)
