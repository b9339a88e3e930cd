"""Loads a finished (or running) run for evaluation and prediction, and predicts splits.

The run is rebuilt by the same `build_run` that trained it, from its `config.json`, on one
device and with the whole dataset, and a checkpoint is restored into its abstract state.
Reading never writes into the workdir.
"""

import os

import jax
import numpy as np

from lenet_jax.errors import UserError
from lenet_jax.training import batches, checkpointing, compilation_cache, parallel
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.run import Snapshot, build_run, load_data

PREDICT_BATCH = 1000


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


def load_run(workdir: str, checkpoint: str = "best") -> Snapshot:
    """Restores `checkpoint` of the run in `workdir` on this process's default device."""
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
    return Snapshot(run, state, step)


def predict_split(snapshot: Snapshot, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) for every example of `split`, in order."""
    images, labels = snapshot.dataset.split(split)
    return predict_images(snapshot, images), labels


def predict_images(snapshot: Snapshot, images: np.ndarray) -> np.ndarray:
    """Logits for uint8 NHWC `images` on this process's default device, in fixed-size padded
    batches (one compilation), whatever strategy trained the run."""
    predict = jax.jit(snapshot.run.predict_step())
    size = min(PREDICT_BATCH, len(images)) or 1
    dummy_labels = np.zeros(len(images), np.int32)
    placed = batches.eval_batches(
        parallel.Strategy(), images, dummy_labels, size, share=slice(None)
    )
    logits = [(predict(snapshot.state, x), mask) for x, _, mask in placed]
    return np.concatenate([np.asarray(out)[np.asarray(mask)] for out, mask in logits])
