"""Loads a finished (or running) run for evaluation and prediction, and predicts splits.

The run is rebuilt by the same `build_run` that trained it, from its `config.json`, on one
device and with the whole dataset, and a checkpoint is restored into its abstract state.
Reading never writes into the workdir.
"""

import os

import jax
import numpy as np

from lenet_jax.errors import UserError
from lenet_jax.training import batches, checkpointing, compilation_cache, metrics, parallel
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.run import Snapshot, build_run, load_data

PREDICT_BATCH = 1000
WEIGHTS = ("auto", "ema", "raw")  # what --weights accepts; auto = ema where the run keeps one


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


def load_run(workdir: str, checkpoint: str = "best", weights: str = "auto") -> Snapshot:
    """Restores `checkpoint` of the run in `workdir` on this process's default device, with
    the parameters `weights` names in `state.params` (the EMA's, or the raw ones)."""
    if weights not in WEIGHTS:
        raise UserError(f"--weights={weights!r}: expected one of {list(WEIGHTS)}")
    if not os.path.exists(workdir_lib.config_path(workdir)):
        raise UserError(f"--workdir={workdir!r} holds no run (no {workdir_lib.CONFIG_FILE})")
    config = workdir_lib.load_config(workdir)
    if config.compilation_cache:
        compilation_cache.enable()
    run = build_run(config, dataset=load_data(config, subset=False), parallelism="single")
    with checkpointing.Checkpoints(
        os.path.join(workdir, "checkpoints"), keep=1, read_only=True
    ) as ckpts:
        step = resolve_step(ckpts, checkpoint)
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        state, _ = ckpts.restore(step, run.abstract_state(device))
    if weights == "ema" and state.ema_params is None:
        raise UserError(
            f"--weights=ema: the run in {workdir} keeps no EMA (config.ema_decay=0); use raw"
        )
    if weights != "raw" and state.ema_params is not None:
        return Snapshot(run, state.replace(params=state.ema_params), step, weights="ema")
    return Snapshot(run, state, step)


def combined_logits(logits: np.ndarray, replica: int | None = None) -> np.ndarray:
    """One model's logits: a population's (N, examples, classes) become the ensemble's
    (the log of the averaged probabilities), or replica `replica`'s."""
    if logits.ndim == 2:
        return logits
    if replica is not None:
        if not 0 <= replica < len(logits):
            raise UserError(f"--replica={replica}: the run has replicas 0 to {len(logits) - 1}")
        return logits[replica]
    return np.asarray(metrics.ensemble_logits(logits))


def predict_split(snapshot: Snapshot, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) for every example of `split`, in order."""
    images, labels = snapshot.dataset.split(split)
    return predict_images(snapshot, images), labels


def predict_images(snapshot: Snapshot, images: np.ndarray) -> np.ndarray:
    """Logits for uint8 NHWC `images` on this process's default device, in fixed-size padded
    batches (one compilation), whatever strategy trained the run: (examples, classes), or a
    population's (N, examples, classes)."""
    predict = snapshot.run.strategy.jit(snapshot.run.predict_step())
    size = min(PREDICT_BATCH, len(images)) or 1
    dummy_labels = np.zeros(len(images), np.int32)
    placed = batches.eval_batches(
        parallel.Strategy(), images, dummy_labels, size, share=slice(None)
    )
    logits = [(predict(snapshot.state, x), mask) for x, _, mask in placed]
    return np.concatenate(
        [np.asarray(out)[..., np.asarray(mask), :] for out, mask in logits], axis=-2
    )
