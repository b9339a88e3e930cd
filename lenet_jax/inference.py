"""Loads a finished (or running) run for evaluation and prediction: config, model, state."""

import dataclasses
import os

import jax
import ml_collections
import numpy as np

from lenet_jax import checkpointing, steps
from lenet_jax import data as data_lib
from lenet_jax import workdir as workdir_lib
from lenet_jax.errors import UserError
from lenet_jax.models import build_model
from lenet_jax.optim import make_optimizer, make_schedule
from lenet_jax.state import TrainState, create_train_state

_PREDICT_BATCH = 1000


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    config: ml_collections.ConfigDict
    model: object  # flax.linen.Module
    state: TrainState
    step: int
    dataset: data_lib.Dataset


def resolve_step(ckpts: checkpointing.Checkpoints, which: str) -> int:
    """`latest`, `best` or a step number -> a step that exists, or a UserError listing them."""
    steps = ckpts.steps()
    if not steps:
        raise UserError(f"{ckpts.directory}: no checkpoints; train first with lenet_jax.train")
    if which == "latest":
        return steps[-1]
    if which == "best":
        return ckpts.best_step() or steps[-1]
    if not which.isdigit() or int(which) not in steps:
        raise UserError(
            f"--checkpoint={which!r}: no such checkpoint; available: "
            f"latest, best, {', '.join(map(str, steps))}"
        )
    return int(which)


def load_run(workdir: str, checkpoint: str = "best") -> LoadedRun:
    """Restores `checkpoint` of the run in `workdir` on this process's default device."""
    if not os.path.exists(workdir_lib.config_path(workdir)):
        raise UserError(f"--workdir={workdir!r} holds no run (no {workdir_lib.CONFIG_FILE})")
    config = workdir_lib.load_config(workdir)
    dataset = data_lib.load_dataset(config.dataset, config.data_dir)
    dtype = config.get("compute_dtype", "float32")
    model = build_model(config.model, num_classes=dataset.num_classes, dtype=dtype)
    with checkpointing.Checkpoints(
        os.path.join(workdir, "checkpoints"), keep=1, read_only=True
    ) as ckpts:
        step = resolve_step(ckpts, checkpoint)
        abstract = _abstract_state(config, model, dataset)
        state, _ = ckpts.restore(step, abstract)
    return LoadedRun(config, model, state, step, dataset)


def _abstract_state(config, model, dataset) -> TrainState:
    """The state's shapes, with a single-device sharding so orbax can place it here."""
    steps_per_epoch = max(1, len(dataset.train_labels) // config.batch_size)
    schedule = make_schedule(
        config.optimizer,
        total_steps=steps_per_epoch * config.num_epochs,
        steps_per_epoch=steps_per_epoch,
    )
    tx = make_optimizer(config.optimizer, schedule)
    shapes = jax.eval_shape(
        lambda key: create_train_state(model, tx, key, dataset.image_shape), jax.random.key(0)
    )
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)


def predict_split(run: LoadedRun, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) for every example of `split`, in order."""
    images, labels = run.dataset.split(split)
    predict = jax.jit(
        steps.make_predict_step(run.model, mean=run.dataset.mean, std=run.dataset.std)
    )
    logits = [
        np.asarray(predict(run.state, images[i : i + _PREDICT_BATCH]))
        for i in range(0, len(labels), _PREDICT_BATCH)
    ]
    return np.concatenate(logits), labels


def evaluation_report(run: LoadedRun, logits: np.ndarray, labels: np.ndarray) -> dict:
    num_classes = run.dataset.num_classes
    predictions = logits.argmax(-1)
    confusion = confusion_matrix(labels, predictions, num_classes)
    loss = float(np.mean(steps.cross_entropy(logits, labels)))
    per_class = confusion.diagonal() / np.maximum(confusion.sum(1), 1)
    return {
        "step": run.step,
        "accuracy": float((predictions == labels).mean()),
        "loss": loss,
        "per_class_accuracy": {
            name: round(float(acc), 4) for name, acc in zip(run.dataset.class_names, per_class)
        },
        "confusion_matrix": confusion.tolist(),
        "class_names": list(run.dataset.class_names),
    }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts per (true class, predicted class): rows are the true class."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return confusion
