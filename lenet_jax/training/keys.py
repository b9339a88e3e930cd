"""The run's keys and its data order: one root key from the seed, split once into init,
per-step train and data keys (a population's folded with each replica's index), and each
epoch's example order as a pure function of (data key, epoch), so a resumed run draws
what an uninterrupted one draws."""

import jax
import numpy as np

from lenet_jax import prng
from lenet_jax.training import replicas


def make_keys(seed: int, num_replicas: int = 1, *, own_data: bool = False) -> dict[str, jax.Array]:
    """One root key split once: init, per-step train (dropout, augmentation) and data order.

    A population's init and train keys are (N,), each folded with its replica's index, and
    so is the data key when each replica has its own data order (`own_data`).
    """
    init_key, train_key, data_key = jax.random.split(prng.key(seed), 3)
    keys = {"init": init_key, "train": train_key, "data": data_key}
    if num_replicas > 1:
        for name in ("init", "train", "data") if own_data else ("init", "train"):
            keys[name] = replicas.replica_keys(keys[name], num_replicas)
    return keys


def epoch_order(data_key: jax.Array, epoch: int, num_examples: int) -> np.ndarray:
    """The example order of `epoch`: a pure function of (data key, epoch); (N, examples) for
    a population's (N,) data keys, one order per replica."""
    if data_key.ndim:
        return np.stack([epoch_order(key, epoch, num_examples) for key in data_key])
    return np.asarray(jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples))
