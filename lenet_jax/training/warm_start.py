"""`config.init_from`: start a run from another run's parameters (fine-tuning, transfer).

The source is a workdir (its best checkpoint, else its latest) or one checkpoint's step
directory (`DIR/checkpoints/1200`). Its parameters and batch statistics replace the fresh
ones path by path ("Conv_0/kernel"), except those `config.init_exclude` matches, which
keep their fresh init (a new head for another class count). The optimizer state, the step
and the EMA start afresh. A population (`num_replicas` > 1) starts every replica from the
same source parameters; the excluded ones differ per replica, as their init keys do.
"""

import os
import re

import jax
import numpy as np

from lenet_jax import files
from lenet_jax.errors import UserError
from lenet_jax.training import checkpointing, param_groups
from lenet_jax.training import workdir as workdir_lib

COLLECTIONS = ("params", "batch_stats")  # what a warm start takes from the source


def source_checkpoint(path: str) -> tuple[str, int, str]:
    """(checkpoints directory, step, the source's model name or "") that `path` names."""
    files.check_readable(path, "config.init_from")
    field = f"config.init_from={path!r}"
    path = os.path.abspath(path)
    if os.path.isdir(os.path.join(path, "checkpoints")):
        directory, step = os.path.join(path, "checkpoints"), None
    elif os.path.basename(path).isdigit() and os.path.isdir(path):
        directory, step = os.path.dirname(path), int(os.path.basename(path))
    else:
        raise UserError(
            f"{field}: not a run's workdir (with checkpoints/) nor a checkpoint step directory "
            "(DIR/checkpoints/STEP)"
        )
    steps = checkpointing.committed_steps(directory)
    if not steps:
        raise UserError(f"{field}: {directory} holds no checkpoint; train that run first")
    if step is None:
        with checkpointing.Checkpoints(directory, keep=1, read_only=True) as ckpts:
            step = ckpts.best_step() or steps[-1]
    workdir = os.path.dirname(directory)
    model = ""
    if os.path.exists(workdir_lib.config_path(workdir)):
        model = workdir_lib.load_config(workdir).model.name
    return directory, step, model


def warm_start(run, fresh):
    """`fresh` (the run's initial state) with the source's parameters and statistics."""
    config = run.config
    directory, step, source_model = source_checkpoint(config.init_from)
    with checkpointing.Checkpoints(directory, keep=1, read_only=True) as ckpts:
        saved = ckpts.restore_arrays(step)
    where = f"config.init_from={config.init_from!r} (step {step}"
    if source_model and source_model != config.model.name:
        where += f", model {source_model!r}; this run's is {config.model.name!r}"
    where += ")"
    replicas = run.num_replicas
    merged = {
        collection: _merge(
            getattr(fresh, collection),
            saved.get(collection) or {},
            exclude=config.init_exclude,
            where=where,
            replicas=replicas,
        )
        for collection in COLLECTIONS
    }
    print(f"warm start from {directory}/{step}", flush=True)
    return run.state_from(merged["params"], merged["batch_stats"])


def _merge(fresh, saved: dict, *, exclude: str, where: str, replicas: int):
    """`fresh` with each leaf not matching `exclude` taken from `saved` (by path), shapes
    checked; a population's leaves get the source's leaf on every replica."""
    flat_saved = {
        param_groups.path_name(path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(saved)[0]
    }

    def take(key_path, leaf):
        name = param_groups.path_name(key_path)
        if exclude and re.search(exclude, name):
            return leaf
        if name not in flat_saved:
            raise UserError(
                f"{where} has no parameter {name!r}, which this model has; list it in "
                f"config.init_exclude to initialise it afresh (it has: {sorted(flat_saved)})"
            )
        source = np.asarray(flat_saved[name])
        if replicas > 1 and source.shape == leaf.shape[1:]:
            source = np.broadcast_to(source, leaf.shape)
        if source.shape != leaf.shape:
            raise UserError(
                f"{where}: parameter {name!r} is {tuple(source.shape)} there but "
                f"{tuple(leaf.shape)} here; list it in config.init_exclude (e.g. "
                f"{name.split('/')[0]!r}) to initialise it afresh"
            )
        return source.astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(take, fresh)
