"""Loads a finished (or running) run for evaluation and prediction, and predicts splits.

The run is rebuilt by the same `build_run` that trained it, from its `config.json`, on one
device and with the whole dataset, and a checkpoint is restored into its abstract state.
Reading never writes into the workdir.
"""

import os

import jax
import numpy as np

from lenet_jax import files
from lenet_jax.errors import UserError
from lenet_jax.training import batches, checkpointing, compilation_cache, metrics, parallel
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.results import Snapshot
from lenet_jax.training.run import build_run
from lenet_jax.training.run_data import load_data

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
    files.check_readable(workdir, "--workdir")
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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of (..., classes) logits, on the host."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict_split(snapshot: Snapshot, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) for every example of `split`, in order."""
    images, labels = snapshot.dataset.split(split)
    return predict_images(snapshot, images), labels


def score_split(
    snapshot: Snapshot, split: str = "test"
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(logits, labels, terms) for every example of `split`, in order: `predict_split` plus
    the run's loss's named terms per example ((N, examples) for a population)."""
    images, labels = snapshot.dataset.split(split)
    outputs = list(batched_outputs(snapshot, snapshot.run.score_step(), images, labels))
    logits = np.concatenate([out[0][..., keep, :] for out, keep in outputs], axis=-2)
    names = outputs[0][0][1] if outputs else {}
    terms = {
        name: np.concatenate([out[1][name][..., keep] for out, keep in outputs], axis=-1)
        for name in names
    }
    return logits, labels, terms


def predict_images(snapshot: Snapshot, images: np.ndarray) -> np.ndarray:
    """Logits for uint8 NHWC `images` on this process's default device, in fixed-size padded
    batches (one compilation), whatever strategy trained the run: (examples, classes), or a
    population's (N, examples, classes)."""
    predict = snapshot.run.predict_step()
    outputs = batched_outputs(snapshot, lambda state, x, labels, mask: predict(state, x), images)
    return np.concatenate([logits[..., keep, :] for logits, keep in outputs], axis=-2)


def batched_outputs(
    snapshot: Snapshot,
    step,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    batch_size: int | None = None,
):
    """(output on the host, which examples are real) of `step(state, images, labels, mask)`
    over `images` in padded batches of one size (one compilation), on this process's
    default device: the run's evaluation batch (`batches.eval_batch_size`) by default."""
    compiled = snapshot.run.strategy.jit(step)
    batch_size = batch_size or batches.eval_batch_size(snapshot.run.config)
    size = min(batch_size, len(images)) or 1
    labels = np.zeros(len(images), np.int32) if labels is None else labels
    placed = batches.eval_batches(parallel.Strategy(), images, labels, size, share=slice(None))
    for x, y, mask in placed:
        yield jax.device_get(compiled(snapshot.state, x, y, mask)), np.asarray(mask)
