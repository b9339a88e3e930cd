"""The trainer's own compiled train step, timed: compile, blocked steps, pipelined steps.

The step is the trainer's: `training.run.build_run` builds data, model, optimizer and
strategy, and the strategy compiles `Run.train_step()`, so nothing here can drift from
what training runs. Batches come from the real dataset in the trainer's epoch order, cut
by `training.batches`.

  compile   the first step call until its state is ready (trace, compile, one step);
  blocked   after `warmup` more steps, `steps` steps each timed on its own, blocking on
            the new state: the step's latency (batch already on the device; the host's
            batch gather and transfer are timed apart);
  pipelined `steps` more steps as the training loop runs them (batches placed first as
            one chunk, then dispatched back to back, one sync at the end): throughput.
"""

import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from lenet_jax.bench.machine import count_compiles, summarize_ms
from lenet_jax.errors import UserError
from lenet_jax.training import batches
from lenet_jax.training.keys import epoch_order
from lenet_jax.training.run import Run, build_run


def host_batches(run: Run) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """`batch(step)`: this process's host arrays of global step `step`, as the trainer cuts them."""
    batch, per_epoch = run.config.batch_size, run.steps_per_epoch
    num_examples = len(run.dataset.train_labels)
    share = run.strategy.process_slice(batch)
    orders: dict[int, np.ndarray] = {}

    def get(step: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, i = divmod(step, per_epoch)
        if epoch not in orders:
            orders[epoch] = epoch_order(run.keys["data"], epoch, num_examples)
        idx = batches.batch_indices(orders[epoch], batch, i, share)
        return run.dataset.train_images[idx], run.dataset.train_labels[idx]

    return get


def measure_steps(config: ml_collections.ConfigDict, *, steps: int = 100, warmup: int = 10) -> dict:
    """Compile time, per-step latency and pipelined throughput of the trainer's train step."""
    if steps < 1 or warmup < 0:
        raise UserError(f"--steps={steps} must be >= 1 and --warmup={warmup} >= 0")
    run = build_run(config)
    strategy, key, batch_at = run.strategy, run.keys["train"], host_batches(run)
    state = strategy.place_state(run.init_state())
    train_step = strategy.compile_train(run.train_step())

    def place(step: int) -> tuple:
        return strategy.place_batch(*batch_at(step))

    started = time.perf_counter()
    state = jax.block_until_ready(train_step(state, *place(0), key))[0]
    compile_s = time.perf_counter() - started
    for step in range(1, 1 + warmup):
        state, _ = train_step(state, *place(step), key)
    jax.block_until_ready(state)
    first = 1 + warmup
    with count_compiles() as compiles:
        state, step_s, prep_s = _blocked_steps(train_step, state, key, place, first, steps)
        state, pipelined_s, loss = _pipelined_steps(
            train_step, state, key, place, first + steps, steps
        )
    return {
        "strategy": strategy.name,
        "num_devices": strategy.num_devices,
        "steps_per_epoch": run.steps_per_epoch,
        "compile_s": round(compile_s, 4),
        "warmup": warmup,
        "steps": steps,
        "step_ms": summarize_ms(step_s),
        "batch_prep_ms": summarize_ms(prep_s),
        "blocked_examples_per_s": round(config.batch_size / float(np.median(step_s)), 1),
        "pipelined_s": round(pipelined_s, 4),
        "pipelined_ms_per_step": round(pipelined_s / steps * 1e3, 4),
        "pipelined_examples_per_s": round(steps * config.batch_size / pipelined_s, 1),
        "compiles_while_timing": compiles["compiles"],
        "final_step": int(jax.device_get(strategy.host_state(state).step)),
        "final_loss": loss,
    }


def _blocked_steps(train_step, state, key, place, first: int, n: int):
    """`n` steps, each timed alone up to its new state being ready; batch prep timed apart."""
    step_s, prep_s = [], []
    for step in range(first, first + n):
        started = time.perf_counter()
        batch = jax.block_until_ready(place(step))
        placed = time.perf_counter()
        state, sums = train_step(state, *batch, key)
        jax.block_until_ready((state, sums))
        step_s.append(time.perf_counter() - placed)
        prep_s.append(placed - started)
    return state, step_s, prep_s


def _pipelined_steps(train_step, state, key, place, first: int, n: int):
    """`n` steps as the training loop runs them: their batches placed first (one chunk),
    then dispatched back to back, one sync at the end; all timed."""
    pending = []
    started = time.perf_counter()
    placed = [place(step) for step in range(first, first + n)]
    for batch in placed:
        state, sums = train_step(state, *batch, key)
        pending.append(sums)
    jax.block_until_ready((state, pending))
    seconds = time.perf_counter() - started
    last = jax.device_get(pending[-1])
    loss = float(last["loss"] / last["count"])
    if not np.isfinite(loss):
        raise UserError(f"train loss became {loss}: the step diverged; timings are meaningless")
    return state, seconds, round(loss, 6)
