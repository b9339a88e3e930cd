"""`train_and_evaluate(config, workdir)`: the training loop, short and top-down.

build the run -> restore or init -> epochs of compiled steps, with a test evaluation, one
write of the epoch's rows and a checkpoint at each epoch end -> the final state and
metrics. It writes no plots and imports no plotting: the `train` command draws them from
what this returns.
"""

import dataclasses
import os

import jax
import ml_collections
import numpy as np

from lenet_jax.errors import UserError
from lenet_jax.training import batches, checkpointing, compilation_cache, distributed
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.epochs import make_runner
from lenet_jax.training.metrics import Totals
from lenet_jax.training.preemption import PreemptionGuard
from lenet_jax.training.run import Run, Snapshot, build_run, log
from lenet_jax.training.writers import create_writer


class Preempted(Exception):
    """Raised after a SIGTERM/SIGINT once the current step is saved."""


@dataclasses.dataclass(frozen=True)
class TrainResult(Snapshot):
    """The final state (on the host) with the final test metrics and the last train row."""

    test: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    # Predicted classes of the test split by the final state (None on several processes).
    test_predictions: np.ndarray | None = None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainResult:
    """Trains per `config`, resuming from `workdir`'s checkpoints."""
    if config.compilation_cache:
        compilation_cache.enable()
    run = build_run(config)
    main = distributed.is_main_process()
    with checkpointing.Checkpoints(
        os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints
    ) as ckpts:
        state, carry, start_step = restore_or_init(ckpts, run, workdir)
        if main:
            workdir_lib.save_config(workdir, config)  # only once the workdir is known to fit
        with (
            create_writer(
                workdir, resume_step=start_step, num_epochs=config.num_epochs, main=main
            ) as writer,
            PreemptionGuard() as guard,
        ):
            loop = Loop(run, ckpts, writer, guard)
            state, test, train = loop.train(run.strategy.place_state(state), carry, start_step)
    # A host copy: the state may span other processes' devices.
    host_state = jax.device_get(run.strategy.host_state(state))
    return TrainResult(
        run, host_state, loop.step, test=test, train=train, test_predictions=loop.test_predictions
    )


def restore_or_init(ckpts: checkpointing.Checkpoints, run: Run, workdir: str):
    """(state, epoch's metric totals, step) from the newest good checkpoint, else fresh."""
    try:
        restored = ckpts.restore_latest_good(run.abstract_state())
    except checkpointing.IncompatibleCheckpoint as e:
        changes = workdir_lib.config_changes(workdir, run.config)
        hint = f" (config changes: {'; '.join(changes)})" if changes else ""
        raise UserError(f"{e}{hint}") from None
    if restored is None:
        return run.init_state(), Totals(), 0
    state, loop_json, step = restored
    log(f"resuming {workdir} from step {step}")
    return state, Totals.from_json(loop_json, batch_size=run.config.batch_size), step


class Loop:
    """The epoch loop: an epoch runner, evaluation, rows, checkpoints, preemption."""

    def __init__(self, run: Run, ckpts, writer, guard):
        self.run, self.config = run, run.config
        self.ckpts, self.writer, self.guard = ckpts, writer, guard
        self.runner = make_runner(run, guard)
        self.eval_step = run.strategy.compile_eval(run.eval_step())
        self.test_batches = None  # placed once, reused by every epoch's evaluation
        self.test_predictions = None  # of the latest evaluation, where one process has all
        self.step = 0

    def train(self, state, totals: Totals, start_step: int):
        """Trains from `start_step` to the end; returns (state, final test, last train)."""
        self.step = start_step
        per_epoch = self.run.steps_per_epoch
        test = train = None
        for epoch in range(start_step // per_epoch, self.config.num_epochs):
            first = self.step - epoch * per_epoch
            result = self.runner.run_epoch(state, epoch, first)
            state, self.step = result.state, self.step + len(result.sums)
            totals = totals.merge(result.sums)
            if self.guard.stop_requested:
                self.save(state, totals)
                raise Preempted(
                    f"stopped at step {self.step} (epoch {epoch + 1}); checkpoint saved"
                )
            train = totals.compute()
            check_finite(train["loss"], self.step, epoch)
            test = self.evaluate(state)
            train |= self.train_extras(result)
            self.writer.write(self.step, epoch + 1, {"train": train, "test": test})
            totals = Totals()
            if is_checkpoint_epoch(epoch, self.config):
                self.save(state, totals, metrics={"accuracy": test["accuracy"]})
        if test is None:  # resumed after the last epoch had already finished
            test = self.evaluate(state)
        self.ckpts.wait()
        return state, test, train or {}

    def train_extras(self, result) -> dict:
        """The train row's fields beyond the metrics: rate and speed."""
        examples = result.steps_timed * self.config.batch_size
        return {
            "learning_rate": float(self.run.schedule(self.step)),
            "examples_per_sec": round(examples / max(result.seconds, 1e-9), 1),
            "epoch_seconds": round(result.seconds, 2),
        }

    def evaluate(self, state) -> dict:
        """Every metric over the test split; its batches are placed at the first call."""
        if self.test_batches is None:
            images, labels = self.run.dataset.split("test")
            size = self.config.eval_batch_size
            self.test_batches = list(batches.eval_batches(self.run.strategy, images, labels, size))
        outputs = [self.eval_step(state, *batch) for batch in self.test_batches]  # no sync
        if distributed.is_single_process():
            predictions = np.concatenate(jax.device_get([p for _, p in outputs]))
            self.test_predictions = predictions[: len(self.run.dataset.test_labels)]
        return Totals().merge([sums for sums, _ in outputs]).compute()

    def save(self, state, totals: Totals, metrics: dict | None = None) -> None:
        host_state = self.run.strategy.host_state(state)
        self.ckpts.save(self.step, host_state, totals.to_json(), metrics=metrics)


def is_checkpoint_epoch(epoch: int, config) -> bool:
    last = epoch + 1 == config.num_epochs
    return last or (epoch + 1) % config.checkpoint_every_epochs == 0


def check_finite(loss: float, step: int, epoch: int) -> None:
    if not np.isfinite(loss):
        raise UserError(
            f"train loss became {loss} by step {step} (epoch {epoch + 1}); lower "
            "config.optimizer.learning_rate (checkpoints saved so far are kept)"
        )
