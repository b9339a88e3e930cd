"""Epoch runners: the Python loop of compiled steps and the scanned epoch, behind one interface.

`runner.run(state, epoch, first)` trains the steps `first..steps_per_epoch-1` of `epoch`
and returns `EpochResult(state, sums, seconds, steps_timed)`, with one metrics-sums entry
per step run, in order. Both place data through the strategy:
  * `StepLoop` dispatches one compiled step per batch (batches placed a chunk at a time),
    fetching the loss only on logging steps, and stops early when preemption is asked for;
  * `ScannedEpoch` keeps the train split on the device (`strategy.place_dataset`) and runs
    the rest of the epoch as one compiled `lax.scan`: one dispatch per epoch, the fast path
    on accelerators. Preemption is honoured at the epoch's end.
"""

from __future__ import annotations

import dataclasses
import io
import sys
import time
from typing import TYPE_CHECKING

import jax
import numpy as np

from lenet_jax.data.streaming import is_streamed
from lenet_jax.errors import UserError
from lenet_jax.training import batches, distributed, metrics, steps
from lenet_jax.training.callbacks import Callbacks
from lenet_jax.training.parallel import Strategy
from lenet_jax.training.profiling import StepProfiler
from lenet_jax.training.progress import Progress

if TYPE_CHECKING:  # run.py checks the config against EPOCH_LOOPS: only annotations name Run
    from lenet_jax.training.run import Run

EPOCH_LOOPS = ("auto", "python", "scan")  # what config.epoch_loop accepts


@dataclasses.dataclass(frozen=True)
class EpochResult:
    state: object
    sums: list  # one metrics.batch_sums per step run, in step order (device values)
    seconds: float  # the timed part (the first step's compilation is not timed)
    steps_timed: int


def resolve_epoch_loop(epoch_loop: str, strategy: Strategy, *, streamed: bool = False) -> str:
    """`auto`: one scanned epoch on an accelerator where the strategy can hold the split,
    else the Python loop (on XLA:CPU the scan runs at the loop's speed, no faster, and the
    loop keeps its progress bar and mid-epoch preemption; the README's performance section
    has the figures). A
    streamed split is never held on the device, so it always takes the Python loop."""
    if epoch_loop == "auto":
        accelerator = jax.default_backend() != "cpu"
        return "scan" if accelerator and strategy.holds_dataset and not streamed else "python"
    if epoch_loop == "scan" and not strategy.holds_dataset:
        raise UserError(
            f"config.epoch_loop='scan' runs on one device, but parallelism is "
            f"{strategy.name!r}; use parallelism=single or epoch_loop=python"
        )
    if epoch_loop == "scan" and streamed:
        raise UserError(
            "config.epoch_loop='scan' holds the train split on the device, but it is "
            "streamed (larger than config.max_in_memory_mb); use epoch_loop=python or "
            "raise max_in_memory_mb"
        )
    return epoch_loop


def check_finite(loss: float, step: int, epoch: int) -> None:
    """A non-finite loss stops the run; the last checkpoint saved is the last finite one."""
    if not np.isfinite(loss):
        raise UserError(
            f"train loss became {loss} by step {step} (epoch {epoch + 1}); lower "
            "config.optimizer.learning_rate (the checkpoints saved so far are finite and kept)"
        )


def make_runner(
    run: Run, guard, profiler: StepProfiler | None = None, callbacks: Callbacks | None = None
):
    """The config's epoch runner for `run`, compiled for its strategy."""
    streamed = is_streamed(run.dataset.train_images)
    loop = resolve_epoch_loop(run.config.epoch_loop, run.strategy, streamed=streamed)
    profiler, callbacks = profiler or StepProfiler(None, 0), callbacks or Callbacks()
    if loop == "scan":
        return ScannedEpoch(run, profiler, callbacks)
    return StepLoop(run, guard, profiler, callbacks)


class StepLoop:
    """A Python loop of one compiled step per batch."""

    def __init__(self, run: Run, guard, profiler: StepProfiler, callbacks: Callbacks):
        self.run, self.guard, self.profiler, self.callbacks = run, guard, profiler, callbacks
        self.train_step = run.strategy.compile_train(run.train_step())
        self.compiled = False  # the first step compiles: timed and reported once

    def run_epoch(self, state, epoch: int, first: int) -> EpochResult:
        run, config = self.run, self.run.config
        batch, per_epoch = config.batch_size, run.steps_per_epoch
        images, labels = run.dataset.train_images, run.dataset.train_labels
        order = run.order(epoch)
        placed = batches.epoch_batches(
            run.strategy, images, labels, order, batch, range(first, per_epoch)
        )
        progress = Progress(
            per_epoch,
            epoch + 1,
            config.num_epochs,
            batch,
            initial=first,
            every=config.log_every_steps,
            stream=sys.stdout if distributed.is_main_process() else io.StringIO(),
        )
        pending, started, timed_from = [], time.perf_counter(), 0
        single = distributed.is_single_process()
        with progress:
            for i, (x, y) in zip(range(first, per_epoch), placed):
                step = epoch * per_epoch + i
                self.profiler.before(step)
                with self.profiler.annotate(step):
                    state, sums = self.train_step(state, x, y, run.keys["train"])
                self.profiler.after(step, state)
                if self.callbacks:
                    self.callbacks.call("on_step", step + 1, state)
                pending.append(sums)
                if not self.compiled:
                    jax.block_until_ready(state)
                    elapsed = time.perf_counter() - started
                    progress.write(f"compiled the train step in {elapsed:.1f} s")
                    self.compiled = True
                    started, timed_from = time.perf_counter(), len(pending)
                due = progress.due(i + 1)  # fetching the loss syncs: only on logging steps
                loss = metrics.mean_loss(sums) if due else None
                if due:
                    check_finite(loss, epoch * per_epoch + i + 1, epoch)
                progress.update(i + 1, loss)
                # One process reads its own flag each step; several agree on logging steps.
                if self.guard.stop_requested if single else due and self.guard.agreed_stop():
                    break
            jax.block_until_ready((state, pending))  # the epoch's time includes its steps
        return EpochResult(state, pending, time.perf_counter() - started, len(pending) - timed_from)


class ScannedEpoch:
    """The rest of an epoch as one compiled scan over the device-resident train split."""

    def __init__(self, run: Run, profiler: StepProfiler, callbacks: Callbacks):
        self.run, self.profiler, self.callbacks = run, profiler, callbacks
        scan_epoch = steps.make_scan_epoch(run.train_step())
        self.train_epoch = run.strategy.jit(scan_epoch, donate_argnums=0)
        dataset = run.dataset
        self.device_data = run.strategy.place_dataset(dataset.train_images, dataset.train_labels)
        self.compiled = False

    def run_epoch(self, state, epoch: int, first: int) -> EpochResult:
        run = self.run
        batch, per_epoch = run.config.batch_size, run.steps_per_epoch
        order = run.order(epoch)  # (examples,) or a population's own (N, examples)
        indices = order[..., first * batch : per_epoch * batch].T.reshape(
            -1, batch, *order.shape[:-1]
        )
        started = time.perf_counter()
        with self.profiler.around(range(epoch * per_epoch + first, (epoch + 1) * per_epoch)):
            state, stacked = self.train_epoch(state, *self.device_data, indices, run.keys["train"])
            stacked = jax.device_get(stacked)
        if not self.compiled:  # compilation is inside the first epoch's time
            distributed.log("compiled and ran the first scanned epoch")
            self.compiled = True
        sums = [jax.tree.map(lambda m, i=i: m[i], stacked) for i in range(len(indices))]
        self.callbacks.call("on_step", (epoch + 1) * per_epoch, state)  # once per epoch
        return EpochResult(state, sums, time.perf_counter() - started, len(indices))
