"""`train_and_evaluate(config, workdir)`: the training loop, short and top-down.

build the run -> restore or init -> epochs of compiled steps, with a test evaluation, one
write of the epoch's rows and a checkpoint at each epoch end -> the final state and
metrics. It writes no plots and imports no plotting: the `train` command draws them from
what this returns.
"""

import contextlib
import dataclasses
import errno
import os

import jax
import ml_collections
import numpy as np

from lenet_jax.data.streaming import is_streamed
from lenet_jax.errors import UserError
from lenet_jax.training import batches, checkpointing, compilation_cache, distributed, lock
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.epochs import check_finite, make_runner
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
    """Trains per `config`, resuming from `workdir`'s checkpoints.

    Holds the workdir's lock throughout (process 0 of a multi-host run: the others write no
    file of their own), and turns a full disk into one line naming what could not be saved.
    """
    if config.compilation_cache:
        compilation_cache.enable()
    run = build_run(config)  # writes nothing: a bad config or model leaves no workdir
    main = distributed.is_main_process()
    ckpt_dir = os.path.join(workdir, "checkpoints")
    with lock.exclusive(workdir) if main else contextlib.nullcontext():
        with (
            disk_full_as_one_line(workdir, ckpt_dir),
            checkpointing.Checkpoints(ckpt_dir, keep=config.keep_checkpoints) as ckpts,
        ):
            state, totals, history, start_step = restore_or_init(ckpts, run, workdir)
            if main:
                workdir_lib.save_config(workdir, config)  # once the workdir is known to fit
            with (
                create_writer(
                    workdir,
                    resume_step=start_step,
                    history=history,
                    num_epochs=config.num_epochs,
                    main=main,
                ) as writer,
                PreemptionGuard() as guard,
            ):
                loop = Loop(run, ckpts, writer, guard)
                placed = run.strategy.place_state(state)
                state, test, train = loop.train(placed, totals, start_step)
    # A host copy: the state may span other processes' devices.
    host_state = jax.device_get(run.strategy.host_state(state))
    return TrainResult(
        run, host_state, loop.step, test=test, train=train, test_predictions=loop.test_predictions
    )


def _is_disk_full(error: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain (orbax and tensorstore wrap the OSError)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def disk_full_as_one_line(workdir: str, ckpt_dir: str):
    """A full disk becomes a UserError saying what is kept and how to continue (around the
    checkpoint manager, whose last asynchronous save may fail as it closes)."""
    try:
        yield
    except Exception as e:
        if not _is_disk_full(e):
            raise
        where = getattr(e, "filename", None) or workdir
        steps = checkpointing.committed_steps(ckpt_dir)
        kept = f"checkpoints up to step {steps[-1]} are intact" if steps else "no checkpoint yet"
        raise UserError(
            f"no space left on the device of {where}; {kept}. Free some space and rerun the "
            "same command to resume"
        ) from None


def restore_or_init(ckpts: checkpointing.Checkpoints, run: Run, workdir: str):
    """(state, epoch's metric totals, the rows written up to it or None, step) from the
    newest good checkpoint, else the fresh state."""
    try:
        restored = ckpts.restore_latest_good(run.abstract_state())
    except checkpointing.IncompatibleCheckpoint as e:
        changes = workdir_lib.config_changes(workdir, run.config)
        hint = f" (config changes: {'; '.join(changes)})" if changes else ""
        raise UserError(f"{e}{hint}") from None
    if restored is None:
        return run.init_state(), Totals(), None, 0
    state, loop_json, step = restored
    log(f"resuming {workdir} from step {step}")
    totals = Totals.from_json(loop_json.get("totals", loop_json), batch_size=run.config.batch_size)
    return state, totals, loop_json.get("history"), step


class Loop:
    """The epoch loop: an epoch runner, evaluation, rows, checkpoints, preemption."""

    def __init__(self, run: Run, ckpts, writer, guard):
        self.run, self.config = run, run.config
        self.ckpts, self.writer, self.guard = ckpts, writer, guard
        self.runner = make_runner(run, guard)
        self.eval_step = run.strategy.compile_eval(run.eval_step())
        self.test_batches = None  # placed once, reused by every epoch's evaluation
        self.test_predictions = None  # of the latest evaluation, where one process has all
        # Every row written so far: each checkpoint carries them, so metrics.jsonl can be
        # rebuilt on resume whatever happened to it (cut short, deleted).
        self.history = writer.rows()
        self.step = 0

    def train(self, state, totals: Totals, start_step: int):
        """Trains from `start_step` to the end; returns (state, final test, last train)."""
        self.step = start_step
        per_epoch = self.run.steps_per_epoch
        test = train = None
        if start_step and start_step % per_epoch == 0 and totals.count:
            # Saved at an epoch's end before its evaluation and rows (by an older version,
            # on a preemption): finish that epoch first, so its rows are not missing.
            test, train = self.finish_epoch(state, totals, start_step // per_epoch - 1, None)
            totals = Totals()
        for epoch in range(start_step // per_epoch, self.config.num_epochs):
            first = self.step - epoch * per_epoch
            result = self.runner.run_epoch(state, epoch, first)
            state, self.step = result.state, self.step + len(result.sums)
            totals = totals.merge(result.sums)
            stopping = self.guard.agreed_stop()
            if self.step < (epoch + 1) * per_epoch:  # stopped within the epoch
                self.save(state, totals)
                raise Preempted(
                    f"stopped at step {self.step}, {self.step - epoch * per_epoch} of "
                    f"{per_epoch} steps into epoch {epoch + 1}; saved a checkpoint at step "
                    f"{self.step} with the epoch's running metrics (no evaluation yet)"
                )
            test, train = self.finish_epoch(state, totals, epoch, result)
            totals = Totals()
            if stopping:
                self.save(state, totals, metrics={"accuracy": test["accuracy"]})
                raise Preempted(
                    f"stopped after epoch {epoch + 1} (step {self.step}); saved its evaluation, "
                    f"its metrics rows and a checkpoint at step {self.step}"
                )
        if test is None:  # resumed after the last epoch had already finished
            test = self.evaluate(state)
        self.ckpts.wait()
        return state, test, train or {}

    def finish_epoch(self, state, totals: Totals, epoch: int, result) -> tuple[dict, dict]:
        """An epoch's end: check the loss, evaluate, write the rows, checkpoint when due."""
        train = totals.compute()
        check_finite(train["loss"], self.step, epoch)
        test = self.evaluate(state)
        train |= self.train_extras(result)
        self.writer.write(self.step, epoch + 1, {"train": train, "test": test})
        for split, scalars in (("train", train), ("test", test)):
            self.history.append({"step": self.step, "epoch": epoch + 1, "split": split, **scalars})
        if is_checkpoint_epoch(epoch, self.config):
            self.save(state, Totals(), metrics={"accuracy": test["accuracy"]})
        return test, train

    def train_extras(self, result) -> dict:
        """The train row's fields beyond the metrics: rate and speed (0 when not timed)."""
        examples = result.steps_timed * self.config.batch_size if result else 0
        seconds = result.seconds if result else 0.0
        return {
            "learning_rate": float(self.run.schedule(self.step)),
            "examples_per_sec": round(examples / max(seconds, 1e-9), 1),
            "epoch_seconds": round(seconds, 2),
        }

    def evaluate(self, state) -> dict:
        """Every metric over the test split; its batches are placed at the first call and
        kept, unless the split is streamed (then they are read again each time)."""
        test_batches = self.test_batches
        if test_batches is None:
            images, labels = self.run.dataset.split("test")
            size = self.config.eval_batch_size
            test_batches = batches.eval_batches(self.run.strategy, images, labels, size)
            if not is_streamed(images):
                test_batches = self.test_batches = list(test_batches)
        outputs = [self.eval_step(state, *batch) for batch in test_batches]  # no sync
        if distributed.is_single_process():
            predictions = np.concatenate(jax.device_get([p for _, p in outputs]))
            self.test_predictions = predictions[: len(self.run.dataset.test_labels)]
        return Totals().merge([sums for sums, _ in outputs]).compute()

    def save(self, state, totals: Totals, metrics: dict | None = None) -> None:
        """A checkpoint at the current step: the state, the epoch's running totals and the
        rows so far (`metrics` ranks it for "best")."""
        host_state = self.run.strategy.host_state(state)
        loop = {"totals": totals.to_json(), "history": self.history}
        self.ckpts.save(self.step, host_state, loop, metrics=metrics)


def is_checkpoint_epoch(epoch: int, config) -> bool:
    last = epoch + 1 == config.num_epochs
    return last or (epoch + 1) % config.checkpoint_every_epochs == 0
