"""`train_and_evaluate(config, workdir)`: the training loop, short and top-down.

data -> model and state -> restore or init -> epochs of compiled steps, with a test
evaluation, metrics rows and a checkpoint at each epoch end -> final evaluation.
"""

import os
import time

import jax
import ml_collections
import numpy as np

from lenet_jax import checkpointing, parallel, steps
from lenet_jax import config as config_lib
from lenet_jax import data as data_lib
from lenet_jax import workdir as workdir_lib
from lenet_jax.errors import UserError
from lenet_jax.metrics_log import MetricsLog
from lenet_jax.models import build_model
from lenet_jax.optim import make_optimizer, make_schedule
from lenet_jax.preemption import PreemptionGuard
from lenet_jax.state import create_train_state


class Preempted(Exception):
    """Raised after a SIGTERM/SIGINT once the current step is saved."""


def make_keys(seed: int) -> dict[str, jax.Array]:
    """One root key split once: init, per-step train (dropout, augmentation) and data order."""
    init_key, train_key, data_key = jax.random.split(jax.random.key(seed), 3)
    return {"init": init_key, "train": train_key, "data": data_key}


def epoch_order(data_key: jax.Array, epoch: int, num_examples: int) -> np.ndarray:
    """The example order of `epoch`: a pure function of (data key, epoch)."""
    return np.asarray(jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains per `config`, resuming from `workdir`'s checkpoints; returns test metrics."""
    config_lib.validate(config)
    dataset = load_data(config)
    strategy = parallel.create(config.parallelism)
    strategy.check_batch(config.batch_size, "batch_size")
    strategy.check_batch(config.eval_batch_size, "eval_batch_size")
    model = build_model(config.model, num_classes=dataset.num_classes)

    steps_per_epoch = len(dataset.train_labels) // config.batch_size
    total_steps = steps_per_epoch * config.num_epochs
    schedule = make_schedule(
        config.optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
    )
    tx = make_optimizer(config.optimizer, schedule)
    keys = make_keys(config.seed)
    init_state = create_train_state(model, tx, keys["init"], dataset.image_shape)

    with checkpointing.Checkpoints(
        os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints
    ) as ckpts:
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=strategy.state_sharding()),
            init_state,
        )
        restored = _restore(ckpts, abstract, workdir, config)
        state, carry, start_step = restored or (init_state, _empty_carry(), 0)
        if restored:
            print(f"resuming {workdir} from step {start_step}", flush=True)
        if jax.process_index() == 0:
            workdir_lib.save_config(workdir, config)  # only once the workdir is known to fit
        log = MetricsLog(
            os.path.join(workdir, "metrics.jsonl"),
            resume_step=start_step,
            enabled=jax.process_index() == 0,
        )
        loop = Loop(config, dataset, strategy, model, tx, schedule, keys, log, ckpts)
        state = strategy.place_state(state)
        with PreemptionGuard() as guard:
            return loop.run(state, carry, start_step, steps_per_epoch, guard)


def _restore(ckpts, abstract, workdir: str, config):
    try:
        return ckpts.restore_latest_good(abstract)
    except checkpointing.IncompatibleCheckpoint as e:
        changes = workdir_lib.config_changes(workdir, config)
        hint = f" (config changes: {'; '.join(changes)})" if changes else ""
        raise UserError(f"{e}{hint}") from None


def _empty_carry() -> dict:
    return {"loss_sum": 0.0, "accuracy_sum": 0.0, "steps": 0}


def load_data(config) -> data_lib.Dataset:
    """The config's dataset, cut to `num_*_examples`, checked against the batch size."""
    dataset = data_lib.load_dataset(config.dataset, config.data_dir)
    print(
        f"loaded {dataset.name} from {dataset.source}: {len(dataset.train_labels)} train, "
        f"{len(dataset.test_labels)} test examples",
        flush=True,
    )
    num_train = len(dataset.train_labels)
    if config.num_train_examples > num_train or config.num_train_examples < 0:
        raise UserError(
            f"config.num_train_examples={config.num_train_examples}: "
            f"expected 0 (all) to {num_train}"
        )
    if config.num_test_examples > len(dataset.test_labels) or config.num_test_examples < 0:
        raise UserError(
            f"config.num_test_examples={config.num_test_examples}: "
            f"expected 0 (all) to {len(dataset.test_labels)}"
        )
    dataset = dataset.take(config.num_train_examples, config.num_test_examples)
    if config.batch_size > len(dataset.train_labels):
        raise UserError(
            f"config.batch_size={config.batch_size} is larger than the "
            f"{len(dataset.train_labels)} training examples of {dataset.name}"
        )
    return dataset


class Loop:
    """The epoch loop; holds the compiled steps and the run's fixed inputs."""

    def __init__(self, config, dataset, strategy, model, tx, schedule, keys, log, ckpts):
        self.config, self.dataset, self.strategy = config, dataset, strategy
        self.schedule, self.keys, self.log, self.ckpts = schedule, keys, log, ckpts
        norm = {"mean": dataset.mean, "std": dataset.std}
        train_step = steps.make_train_step(
            model, tx, **norm, label_smoothing=config.label_smoothing, axis_name=strategy.axis_name
        )
        self.train_step = strategy.compile_train(train_step)
        self.eval_step = strategy.compile_eval(steps.make_eval_step(model, **norm))
        self.compiled = False

    def run(self, state, carry, start_step, steps_per_epoch, guard) -> dict:
        config = self.config
        step = start_step
        test = None
        for epoch in range(start_step // steps_per_epoch, config.num_epochs):
            state, carry, step = self.train_epoch(state, carry, step, epoch, steps_per_epoch, guard)
            if guard.stop_requested:
                self._save(step, state, carry)
                raise Preempted(f"stopped at step {step} (epoch {epoch + 1}); checkpoint saved")
            train = {
                "loss": carry["loss_sum"] / carry["steps"],
                "accuracy": carry["accuracy_sum"] / carry["steps"],
            }
            _check_finite(train["loss"], step, epoch)
            test = self.evaluate(state)
            self._write_rows(step, epoch, train, test)
            carry = _empty_carry()
            if (epoch + 1) % config.checkpoint_every_epochs == 0 or epoch + 1 == config.num_epochs:
                self._save(step, state, carry, metrics={"accuracy": test["accuracy"]})
        if test is None:  # resumed after the last epoch had already finished
            test = self.evaluate(state)
        self.ckpts.wait()
        return test

    def train_epoch(self, state, carry, step, epoch, steps_per_epoch, guard):
        batch = self.config.batch_size
        order = epoch_order(self.keys["data"], epoch, len(self.dataset.train_labels))
        share = self.strategy.process_slice(batch)
        pending = []
        started = time.perf_counter()
        first = step - epoch * steps_per_epoch
        for i in range(first, steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch][share]
            images, labels = self.strategy.place_batch(
                self.dataset.train_images[idx], self.dataset.train_labels[idx]
            )
            state, metrics = self.train_step(state, images, labels, self.keys["train"])
            pending.append(metrics)
            step += 1
            if not self.compiled:
                jax.block_until_ready(state)
                print(
                    f"compiled the train step in {time.perf_counter() - started:.1f} s", flush=True
                )
                self.compiled = True
            if guard.stop_requested:
                break
        carry = _accumulate(carry, pending)
        self.last_epoch_seconds = time.perf_counter() - started
        self.last_epoch_speed = len(pending) * batch / max(self.last_epoch_seconds, 1e-9)
        return state, carry, step

    def evaluate(self, state) -> dict:
        return evaluate_split(
            self.eval_step, self.strategy, state, self.dataset, "test", self.config.eval_batch_size
        )

    def _write_rows(self, step, epoch, train, test) -> None:
        lr = float(self.schedule(step))
        common = {"step": step, "epoch": epoch + 1}
        self.log.write(
            {
                **common,
                "split": "train",
                **train,
                "learning_rate": lr,
                "examples_per_sec": round(self.last_epoch_speed, 1),
                "epoch_seconds": round(self.last_epoch_seconds, 2),
            }
        )
        self.log.write({**common, "split": "test", **test})
        print(
            f"epoch {epoch + 1}/{self.config.num_epochs}  step {step}  "
            f"train loss {train['loss']:.4f} acc {train['accuracy']:.4f}  "
            f"test loss {test['loss']:.4f} acc {test['accuracy']:.4f}  "
            f"{self.last_epoch_speed:,.0f} ex/s  {self.last_epoch_seconds:.1f} s",
            flush=True,
        )

    def _save(self, step, state, carry, metrics=None) -> None:
        self.ckpts.save(step, self.strategy.host_state(state), carry, metrics=metrics)


def _accumulate(carry: dict, pending: list[dict]) -> dict:
    """Adds the epoch's per-step metrics in step order, in float64 on the host.

    Sequential addition makes the sums independent of where a run was interrupted.
    """
    loss_sum, accuracy_sum = carry["loss_sum"], carry["accuracy_sum"]
    for m in jax.device_get(pending):
        loss_sum += float(m["loss"])
        accuracy_sum += float(m["accuracy"])
    return {
        "loss_sum": loss_sum,
        "accuracy_sum": accuracy_sum,
        "steps": carry["steps"] + len(pending),
    }


def _check_finite(loss: float, step: int, epoch: int) -> None:
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
