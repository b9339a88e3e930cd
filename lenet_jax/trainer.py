"""`train_and_evaluate(config, workdir)`: the training loop, short and top-down.

data -> model and state -> restore or init -> epochs of compiled steps, with a test
evaluation, metrics rows (metrics.jsonl, TensorBoard) and a checkpoint at each epoch end
-> final evaluation and plots.
"""

import dataclasses
import io
import os
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from lenet_jax import augment, batches, checkpointing, distributed, parallel, plots, steps
from lenet_jax import config as config_lib
from lenet_jax import data as data_lib
from lenet_jax import workdir as workdir_lib
from lenet_jax.errors import UserError
from lenet_jax.inference import LoadedRun
from lenet_jax.metrics_log import MetricsLog
from lenet_jax.models import build_model
from lenet_jax.optim import make_optimizer, make_schedule
from lenet_jax.preemption import PreemptionGuard
from lenet_jax.progress import Progress
from lenet_jax.state import create_train_state
from lenet_jax.tensorboard import TensorBoardWriter


def log(*args) -> None:
    """Progress lines: from process 0 only, so a multi-host run prints each line once."""
    if distributed.is_main_process():
        print(*args, flush=True)


class Preempted(Exception):
    """Raised after a SIGTERM/SIGINT once the current step is saved."""


def make_keys(seed: int) -> dict[str, jax.Array]:
    """One root key split once: init, per-step train (dropout, augmentation) and data order."""
    init_key, train_key, data_key = jax.random.split(jax.random.key(seed), 3)
    return {"init": init_key, "train": train_key, "data": data_key}


def epoch_order(data_key: jax.Array, epoch: int, num_examples: int) -> np.ndarray:
    """The example order of `epoch`: a pure function of (data key, epoch)."""
    return np.asarray(jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples))


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything fixed for the length of a run."""

    config: ml_collections.ConfigDict
    workdir: str
    dataset: data_lib.Dataset
    strategy: parallel.Strategy
    model: object  # flax.linen.Module
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    keys: dict[str, jax.Array]
    steps_per_epoch: int
    epoch_loop: str  # "python" or "scan", resolved for this backend


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains per `config`, resuming from `workdir`'s checkpoints; returns test metrics."""
    setup = make_setup(config, workdir)
    init_state = create_train_state(
        setup.model, setup.tx, setup.keys["init"], setup.dataset.image_shape
    )
    ckpt_dir = os.path.join(workdir, "checkpoints")
    with checkpointing.Checkpoints(ckpt_dir, keep=config.keep_checkpoints) as ckpts:
        state, carry, start_step = restore_or_init(ckpts, init_state, setup)
        main = distributed.is_main_process()
        if main:
            workdir_lib.save_config(workdir, config)  # only once the workdir is known to fit
        metrics_log = MetricsLog(
            os.path.join(workdir, "metrics.jsonl"), resume_step=start_step, enabled=main
        )
        with (
            TensorBoardWriter(workdir, enabled=main, resume_step=start_step) as tensorboard,
            PreemptionGuard() as guard,
        ):
            loop = Loop(setup, ckpts, metrics_log, tensorboard, guard)
            state, test = loop.run(setup.strategy.place_state(state), carry, start_step)
        if main:  # on a host copy: the state may span other processes' devices
            host_state = jax.device_get(setup.strategy.host_state(state))
            final = LoadedRun(config, setup.model, host_state, loop.step, setup.dataset)
            plots.write_run_plots(workdir, final)
    return test


def make_setup(config: ml_collections.ConfigDict, workdir: str) -> Setup:
    config_lib.validate(config)
    dataset = load_data(config)
    strategy = parallel.create(config.parallelism)
    strategy.check_batch(config.batch_size, "batch_size")
    strategy.check_batch(config.eval_batch_size, "eval_batch_size")
    model = build_model(config.model, num_classes=dataset.num_classes, dtype=config.compute_dtype)
    steps_per_epoch = len(dataset.train_labels) // config.batch_size
    schedule = make_schedule(
        config.optimizer,
        total_steps=steps_per_epoch * config.num_epochs,
        steps_per_epoch=steps_per_epoch,
    )
    tx = make_optimizer(config.optimizer, schedule)
    return Setup(
        config,
        workdir,
        dataset,
        strategy,
        model,
        tx,
        schedule,
        make_keys(config.seed),
        steps_per_epoch,
        resolve_epoch_loop(config.epoch_loop, strategy),
    )


def resolve_epoch_loop(epoch_loop: str, strategy: parallel.Strategy) -> str:
    """`auto`: one scanned epoch on an accelerator; a Python loop of steps on XLA:CPU.

    On a 2-core CPU a scanned d2l-LeNet epoch took 25 s against the loop's 7.3 s with XLA's
    convolutions; with the banded ones the scan is no faster (2.6-4.0 vs 2.7-3.1 s), and
    the loop keeps its progress bar and mid-epoch preemption.
    """
    if epoch_loop == "auto":
        accelerator = jax.default_backend() != "cpu"
        return "scan" if accelerator and strategy.name == "single" else "python"
    if epoch_loop == "scan" and strategy.name != "single":
        raise UserError(
            f"config.epoch_loop='scan' runs on one device, but parallelism is "
            f"{strategy.name!r}; use parallelism=single or epoch_loop=python"
        )
    return epoch_loop


def restore_or_init(ckpts: checkpointing.Checkpoints, init_state, setup: Setup):
    """(state, loop carry, step) from the newest good checkpoint, else the fresh state."""
    sharding = setup.strategy.state_sharding()
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), init_state
    )
    try:
        restored = ckpts.restore_latest_good(abstract)
    except checkpointing.IncompatibleCheckpoint as e:
        changes = workdir_lib.config_changes(setup.workdir, setup.config)
        hint = f" (config changes: {'; '.join(changes)})" if changes else ""
        raise UserError(f"{e}{hint}") from None
    if restored is None:
        return init_state, empty_carry(), 0
    log(f"resuming {setup.workdir} from step {restored[2]}")
    return restored


def empty_carry() -> dict:
    """What the loop carries between steps of an epoch: running train-metric sums."""
    return {"loss_sum": 0.0, "accuracy_sum": 0.0, "steps": 0}


def load_data(config) -> data_lib.Dataset:
    """The config's dataset, cut to `num_*_examples`, checked against the batch size."""
    dataset = data_lib.load_dataset(config.dataset, config.data_dir)
    log(
        f"loaded {dataset.name} from {dataset.source}: {len(dataset.train_labels)} train, "
        f"{len(dataset.test_labels)} test examples"
    )
    for field, split in (("num_train_examples", "train"), ("num_test_examples", "test")):
        available = len(dataset.split(split)[1])
        if not 0 <= config[field] <= available:
            raise UserError(f"config.{field}={config[field]}: expected 0 (all) to {available}")
    dataset = dataset.take(config.num_train_examples, config.num_test_examples)
    if config.batch_size > len(dataset.train_labels):
        raise UserError(
            f"config.batch_size={config.batch_size} is larger than the "
            f"{len(dataset.train_labels)} training examples of {dataset.name}"
        )
    return dataset


def compile_steps(setup: Setup):
    """The run's train step (or whole scanned epoch) and eval step, compiled for its strategy."""
    norm = {"mean": setup.dataset.mean, "std": setup.dataset.std}
    dtype = jnp.dtype(setup.config.compute_dtype)
    train_step = steps.make_train_step(
        setup.model,
        setup.tx,
        **norm,
        label_smoothing=setup.config.label_smoothing,
        augment=augment.make_augment(**setup.config.augment),
        compute_dtype=dtype,
        axis_name=setup.strategy.axis_name,
    )
    eval_step = steps.make_eval_step(setup.model, **norm, compute_dtype=dtype)
    if setup.epoch_loop == "scan":
        train = jax.jit(steps.make_scan_epoch(train_step), donate_argnums=0)
    else:
        train = setup.strategy.compile_train(train_step)
    return train, setup.strategy.compile_eval(eval_step)


class Loop:
    """The epoch loop: compiled steps, metrics rows, checkpoints, preemption."""

    def __init__(self, setup: Setup, ckpts, metrics_log, tensorboard, guard):
        self.setup, self.config = setup, setup.config
        self.ckpts, self.metrics_log, self.tensorboard, self.guard = (
            ckpts,
            metrics_log,
            tensorboard,
            guard,
        )
        self.train_step, self.eval_step = compile_steps(setup)
        if setup.epoch_loop == "scan":  # the whole train split stays on the device
            self.device_data = jax.device_put(
                (setup.dataset.train_images, setup.dataset.train_labels), jax.devices()[0]
            )
        self.step = 0
        self.compiled = False  # the first step compiles: timed and reported once

    def run(self, state, carry: dict, start_step: int):
        """Trains from `start_step` to the end; returns (state, final test metrics)."""
        self.step = start_step
        test = None
        first_epoch = start_step // self.setup.steps_per_epoch
        for epoch in range(first_epoch, self.config.num_epochs):
            state, carry, (steps_run, seconds) = self.train_epoch(state, carry, epoch)
            if self.guard.stop_requested:
                self.save(state, carry)
                raise Preempted(
                    f"stopped at step {self.step} (epoch {epoch + 1}); checkpoint saved"
                )
            train = {
                "loss": carry["loss_sum"] / carry["steps"],
                "accuracy": carry["accuracy_sum"] / carry["steps"],
            }
            check_finite(train["loss"], self.step, epoch)
            test = self.evaluate(state)
            self.write_rows(
                epoch,
                train,
                test,
                examples=steps_run * self.config.batch_size,
                seconds=seconds,
            )
            carry = empty_carry()
            if is_checkpoint_epoch(epoch, self.config):
                self.save(state, carry, metrics={"accuracy": test["accuracy"]})
        if test is None:  # resumed after the last epoch had already finished
            test = self.evaluate(state)
        self.ckpts.wait()
        return state, test

    def train_epoch(self, state, carry: dict, epoch: int):
        """Steps through `epoch` from where `self.step` stands.

        Returns (state, carry, (steps timed, seconds)); compilation is not timed.
        """
        if self.setup.epoch_loop == "scan":
            return self.train_epoch_scanned(state, carry, epoch)
        batch, per_epoch = self.config.batch_size, self.setup.steps_per_epoch
        dataset, strategy = self.setup.dataset, self.setup.strategy
        order = epoch_order(self.setup.keys["data"], epoch, len(dataset.train_labels))
        first = self.step - epoch * per_epoch
        placed = batches.epoch_batches(strategy, dataset, order, batch, range(first, per_epoch))
        progress = Progress(
            per_epoch,
            epoch + 1,
            self.config.num_epochs,
            batch,
            initial=first,
            every=self.config.log_every_steps,
            stream=_progress_stream(),
        )
        pending, started, timed_from = [], time.perf_counter(), 0
        for i, (images, labels) in zip(range(first, per_epoch), placed):
            state, metrics = self.train_step(state, images, labels, self.setup.keys["train"])
            pending.append(metrics)
            self.step += 1
            if not self.compiled:
                jax.block_until_ready(state)
                progress.write(f"compiled the train step in {time.perf_counter() - started:.1f} s")
                self.compiled = True
                started, timed_from = time.perf_counter(), len(pending)
            due = progress.due(i + 1)  # fetching the loss syncs: only on logging steps
            progress.update(i + 1, float(metrics["loss"]) if due else None)
            if self.guard.stop_requested:
                break
        carry = accumulate(carry, pending)
        progress.close()
        return state, carry, (len(pending) - timed_from, time.perf_counter() - started)

    def train_epoch_scanned(self, state, carry: dict, epoch: int):
        """The rest of `epoch` as one compiled scan; preemption is honoured at its end."""
        batch, per_epoch = self.config.batch_size, self.setup.steps_per_epoch
        order = epoch_order(self.setup.keys["data"], epoch, len(self.setup.dataset.train_labels))
        first = self.step - epoch * per_epoch
        indices = order[first * batch : per_epoch * batch].reshape(-1, batch)
        started = time.perf_counter()
        state, metrics = self.train_step(
            state, *self.device_data, indices, self.setup.keys["train"]
        )
        metrics = jax.device_get(metrics)
        if not self.compiled:  # compilation is inside the first epoch's time
            log("compiled and ran the first scanned epoch")
            self.compiled = True
        self.step += len(indices)
        per_step = [jax.tree.map(lambda m, i=i: m[i], metrics) for i in range(len(indices))]
        timing = (len(indices), time.perf_counter() - started)
        return state, accumulate(carry, per_step), timing

    def evaluate(self, state) -> dict:
        return evaluate_split(
            self.eval_step,
            self.setup.strategy,
            state,
            self.setup.dataset,
            "test",
            self.config.eval_batch_size,
        )

    def write_rows(self, epoch: int, train: dict, test: dict, *, examples: int, seconds: float):
        speed = examples / max(seconds, 1e-9)
        lr = float(self.setup.schedule(self.step))
        common = {"step": self.step, "epoch": epoch + 1}
        self.metrics_log.write(
            {
                **common,
                "split": "train",
                **train,
                "learning_rate": lr,
                "examples_per_sec": round(speed, 1),
                "epoch_seconds": round(seconds, 2),
            }
        )
        self.metrics_log.write({**common, "split": "test", **test})
        self.tensorboard.write_scalars(self.step, "train", {**train, "learning_rate": lr})
        self.tensorboard.write_scalars(self.step, "test", test)
        self.tensorboard.flush()
        log(
            f"epoch {epoch + 1}/{self.config.num_epochs}  step {self.step}  "
            f"train loss {train['loss']:.4f} acc {train['accuracy']:.4f}  "
            f"test loss {test['loss']:.4f} acc {test['accuracy']:.4f}  "
            f"{speed:,.0f} ex/s  {seconds:.1f} s"
        )

    def save(self, state, carry: dict, metrics: dict | None = None) -> None:
        host_state = self.setup.strategy.host_state(state)
        self.ckpts.save(self.step, host_state, carry, metrics=metrics)


def _progress_stream():
    return sys.stdout if distributed.is_main_process() else io.StringIO()


def is_checkpoint_epoch(epoch: int, config) -> bool:
    last = epoch + 1 == config.num_epochs
    return last or (epoch + 1) % config.checkpoint_every_epochs == 0


def accumulate(carry: dict, pending: list[dict]) -> dict:
    """Adds the epoch's per-step metrics in step order, in float64 on the host.

    Sequential addition makes the sums independent of where a run was interrupted.
    """
    loss_sum, accuracy_sum = carry["loss_sum"], carry["accuracy_sum"]
    for m in jax.device_get(pending):
        loss_sum += float(m["loss"])
        accuracy_sum += float(m["accuracy"])
    steps_done = carry["steps"] + len(pending)
    return {"loss_sum": loss_sum, "accuracy_sum": accuracy_sum, "steps": steps_done}


def check_finite(loss: float, step: int, epoch: int) -> None:
    if not np.isfinite(loss):
        raise UserError(
            f"train loss became {loss} by step {step} (epoch {epoch + 1}); lower "
            "config.optimizer.learning_rate (checkpoints saved so far are kept)"
        )


def evaluate_split(eval_step, strategy, state, dataset, split: str, batch_size: int) -> dict:
    """Loss and accuracy over a whole split: the last batch is padded and masked."""
    images, labels = dataset.split(split)
    n = len(labels)
    share = strategy.process_slice(batch_size)
    totals = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = idx < n
        idx = np.where(mask, idx, 0)[share]
        batch = strategy.place_batch(images[idx], labels[idx], mask[share])
        totals.append(eval_step(state, *batch))
    sums = jax.tree.map(lambda *xs: float(np.sum(xs)), *jax.device_get(totals))
    return {"loss": sums["loss_sum"] / sums["count"], "accuracy": sums["correct"] / sums["count"]}
