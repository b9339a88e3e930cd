"""`train_and_evaluate(config, workdir)`: the training loop, short and top-down.

build the run -> restore or init (or warm-start) -> epochs of compiled steps, with a test
evaluation, one write of the epoch's rows and a checkpoint at each epoch end -> the final
state and metrics. A signal or a spent time budget stops at a step boundary with a
checkpoint; early stopping ends the run at an epoch's end. It writes no plots and imports
no plotting: the `train` command draws them from what this returns.
"""

import contextlib
import os

import jax
import ml_collections
import numpy as np

from lenet_jax.data.streaming import is_streamed
from lenet_jax.training import batches, checkpointing, compilation_cache, distributed, lock, metrics
from lenet_jax.training import callbacks as callbacks_lib
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.cadence import early_stop_reason, is_checkpoint_epoch, is_eval_epoch
from lenet_jax.training.distributed import log
from lenet_jax.training.epochs import check_finite, make_runner
from lenet_jax.training.metrics import Totals
from lenet_jax.training.pbt import Members
from lenet_jax.training.preemption import Preempted, PreemptionGuard, TimeBudget
from lenet_jax.training.profiling import StepProfiler
from lenet_jax.training.results import TrainResult
from lenet_jax.training.resume import restore_or_init
from lenet_jax.training.run import Run, build_run
from lenet_jax.training.steps import trees_equal
from lenet_jax.training.sweeps import builtin_callbacks, curve_labels, rate_extras
from lenet_jax.training.tensorboard import SUBDIR as TENSORBOARD_DIR
from lenet_jax.training.writers import create_writer

EMA_SPLIT = "test_ema"  # the test rows of the parameters' moving average


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainResult:
    """Trains per `config`, resuming from `workdir`'s checkpoints.

    Holds the workdir's lock throughout (process 0 of a multi-host run: the others write no
    file of their own), and turns a full disk into one line naming what could not be saved.
    """
    if config.compilation_cache:
        compilation_cache.enable()
    run = build_run(config)  # writes nothing: a bad config, model or callback leaves no workdir
    callbacks = callbacks_lib.build(config.get("callbacks", ()), builtin_callbacks(run, workdir))
    main = distributed.is_main_process()
    ckpt_dir = os.path.join(workdir, "checkpoints")
    with lock.exclusive(workdir) if main else contextlib.nullcontext():
        with (
            checkpointing.disk_full_as_one_line(workdir, ckpt_dir),
            checkpointing.Checkpoints(ckpt_dir, keep=config.keep_checkpoints) as ckpts,
        ):
            start = restore_or_init(ckpts, run, workdir)
            if main:
                workdir_lib.save_config(workdir, config)  # once the workdir is known to fit
            profiler = StepProfiler(os.path.join(workdir, TENSORBOARD_DIR), config.profile_steps)
            with (
                create_writer(
                    workdir,
                    resume_step=start.step,
                    history=start.history,
                    num_epochs=config.num_epochs,
                    main=main,
                    member_labels=curve_labels(run.sweep, config.sweep_strategy),
                ) as writer,
                PreemptionGuard() as guard,
            ):
                loop = Loop(run, ckpts, writer, guard, profiler, start.train_seconds, callbacks)
                placed = run.strategy.place_state(start.state)
                try:
                    state, test, train = loop.train(placed, start.totals, start.step)
                finally:
                    profiler.stop()
    return TrainResult(
        run,
        jax.device_get(run.strategy.host_state(state)),  # it may span others' devices
        loop.step,
        test=test,
        train=train,
        test_predictions=loop.test_predictions,
        stop_reason=loop.stop_reason,
        test_ema=loop.test_ema,
        resumed_from=start.step,
        steps_trained=loop.steps_trained,
    )


class Loop:
    """The epoch loop: an epoch runner, evaluation, rows, checkpoints, stopping."""

    def __init__(
        self, run: Run, ckpts, writer, guard, profiler=None, train_seconds=0.0, callbacks=None
    ):
        self.run, self.config = run, run.config
        self.ckpts, self.writer, self.guard = ckpts, writer, guard
        self.callbacks = callbacks or callbacks_lib.Callbacks()
        self.runner = make_runner(run, guard, profiler, self.callbacks)
        self.eval_step = run.strategy.compile_eval(run.eval_step())
        self.test_batches = None  # placed once, reused by every epoch's evaluation
        self.test_predictions = None  # of the latest evaluation, where one process has all
        # Every row written so far: each checkpoint carries them, so metrics.jsonl can be
        # rebuilt on resume whatever happened to it (cut short, deleted).
        self.history = writer.rows()
        self.step = 0
        self.steps_trained = 0  # counted from the epochs' results, not from the step numbers
        self.stop_reason = ""
        self.rows: dict = {}  # the latest epoch's rows, by split
        self.test_ema: dict = {}  # the latest evaluation of the EMA parameters, where kept
        self.members = Members(run)  # a sweep's values now, and PBT's exploits
        self.budget = TimeBudget(self.config.max_train_seconds, train_seconds)
        guard.deadline = self.budget.deadline

    @property
    def score_split(self) -> str:
        """The rows that rank checkpoints and drive early stopping: the EMA's where kept."""
        return EMA_SPLIT if self.run.has_ema else "test"

    def train(self, state, totals: Totals, start_step: int):
        """Trains from `start_step` to the end; returns (state, final test, last train)."""
        self.step = start_step
        per_epoch = self.run.steps_per_epoch
        test = train = None
        self.budget.check_left(self.step)
        self.members.start(state)
        self.callbacks.call("on_start", self.run, state, start_step)
        if start_step and start_step % per_epoch == 0 and totals.count:
            # Saved at an epoch's end before its evaluation and rows (by an older version,
            # on a preemption): finish that epoch first, so its rows are not missing.
            state, test, train = self.finish_epoch(state, totals, start_step // per_epoch - 1)
            totals = Totals()
        for epoch in range(start_step // per_epoch, self.config.num_epochs):
            self.stop_reason = self.early_stop_reason()
            if self.stop_reason:
                log(self.stop_reason)
                break
            first = self.step - epoch * per_epoch
            result = self.runner.run_epoch(state, epoch, first)
            state, self.step = result.state, self.step + len(result.sums)
            self.steps_trained += len(result.sums)
            totals = totals.merge(result.sums)
            stopping = self.guard.agreed_stop()
            if self.step < (epoch + 1) * per_epoch:  # stopped within the epoch
                self.save(state, totals)
                raise self.stopped(
                    f"stopped at step {self.step}, {self.step - epoch * per_epoch} of "
                    f"{per_epoch} steps into epoch {epoch + 1}; saved a checkpoint at step "
                    f"{self.step} with the epoch's running metrics (no evaluation yet)"
                )
            state, test, train = self.finish_epoch(state, totals, epoch, result)
            totals = Totals()
            if stopping:
                self.save(state, totals, metrics=self.ranking())
                raise self.stopped(
                    f"stopped after epoch {epoch + 1} (step {self.step}); saved its evaluation, "
                    f"its metrics rows and a checkpoint at step {self.step}"
                )
        if test is None:  # resumed after the last epoch (or the early stop) had finished
            test = self.evaluate(state)
        self.ckpts.wait()
        self.callbacks.call("on_end", state, test)
        return state, test, train or {}

    def stopped(self, what: str) -> Preempted:
        """The exception for a stop the guard asked for: a signal's, or the time budget's."""
        if self.guard.signal_number is None and self.guard.deadline is not None:
            return self.budget.spent(what)
        return Preempted(what)

    def early_stop_reason(self) -> str:
        """Why to stop now (`cadence.early_stop_reason`); "" to go on."""
        return early_stop_reason(self.history, self.score_split, self.config, self.step)

    def finish_epoch(self, state, totals: Totals, epoch: int, result=None):
        """An epoch's end: check the loss, evaluate, exploit (PBT), write the rows, checkpoint
        when due (or on an early stop); (the state to go on from, test metrics, train row)."""
        train = totals.compute()
        check_finite(train["loss"], self.step, epoch)
        rows = self.rows = {"train": train}
        if is_eval_epoch(epoch, self.config):
            rows["test"] = self.evaluate(state)
            if self.run.has_ema and trees_equal(state.params, state.ema_params):
                # Lookahead's last move leaves the parameters at their average: the same
                # weights, so one evaluation (airbench's six TTA views are dear) gives both.
                rows[EMA_SPLIT] = self.test_ema = dict(rows["test"])
            elif self.run.has_ema:
                ema_state = state.replace(params=state.ema_params)
                rows[EMA_SPLIT] = self.test_ema = self.evaluate(ema_state)
        train |= self.train_extras(result)
        state = self.members.end_epoch(state, rows, epoch, self.score_split)
        self.writer.write(self.step, epoch + 1, rows)
        for split, scalars in rows.items():
            self.history.append({"step": self.step, "epoch": epoch + 1, "split": split, **scalars})
        last = epoch + 1 == self.config.num_epochs
        if is_checkpoint_epoch(epoch, self.config) or (not last and self.early_stop_reason()):
            self.save(state, Totals(), metrics=self.ranking())
        self.callbacks.call("on_epoch_end", epoch + 1, state, rows)  # all of it saved by now
        return state, rows.get("test"), train

    def ranking(self) -> dict | None:
        """What ranks this checkpoint for "best": the latest epoch's score of
        `config.best_metric`, as `checkpointing.ranking` stores it (None after an epoch
        without an evaluation: such a checkpoint is never the best)."""
        if self.score_split not in self.rows:
            return None
        name = self.config.best_metric
        value = self.rows[self.score_split][name]
        return checkpointing.ranking(name, value, metrics.metric(name).higher_is_better)

    def train_extras(self, result) -> dict:
        """The train row's fields beyond the metrics: rate and speed (0 when not timed)."""
        examples = result.steps_timed * self.config.batch_size if result else 0
        seconds = result.seconds if result else 0.0
        rate = self.run.learning_rate(self.step)
        return {
            "learning_rate": rate,
            **rate_extras(self.members.values, rate, self.config.optimizer.learning_rate),
            "examples_per_sec": round(examples / max(seconds, 1e-9), 1),
            "epoch_seconds": round(seconds, 2),
        }

    def evaluate(self, state) -> dict:
        """Every metric over the test split; its batches are placed at the first call and
        kept, unless the split is streamed (then they are read again each time)."""
        test_batches = self.test_batches
        if test_batches is None:
            images, labels = self.run.dataset.split("test")
            size = batches.eval_batch_size(self.config)
            test_batches = batches.eval_batches(self.run.strategy, images, labels, size)
            if not is_streamed(images):
                test_batches = self.test_batches = list(test_batches)
        outputs = [self.eval_step(state, *batch) for batch in test_batches]  # no sync
        if distributed.is_single_process():
            predictions = np.concatenate(jax.device_get([p for _, p in outputs]))
            self.test_predictions = predictions[: len(self.run.dataset.test_labels)]
        return Totals().merge([sums for sums, _ in outputs]).compute()

    def save(self, state, totals: Totals, metrics: dict | None = None) -> None:
        """A checkpoint at the current step: the state, the epoch's running totals, the rows
        so far and the training time spent (`metrics` ranks it for "best")."""
        host_state = self.run.strategy.host_state(state)
        loop = {
            "totals": totals.to_json(),
            "history": self.history,
            "train_seconds": self.budget.seconds(),
        }
        self.ckpts.save(self.step, host_state, loop, metrics=metrics)
