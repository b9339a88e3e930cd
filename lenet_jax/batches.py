"""The Python epoch loop's batches: gathered on the host and placed on the devices in chunks.

Gathering and placing a batch between two dispatches puts host work on the cores that
XLA:CPU is computing on, and slows the step more than the work itself costs. Placing a
chunk of batches at once, before the chunk's first step, does not: the d2l LeNet's
pipelined step ran ~5% faster on the 2-core CPU machine (interleaved A/B, batch 256).
A chunk holds at most `CHUNK_BYTES` of images: a whole epoch of the datasets shipped here.
"""

from collections.abc import Iterator

import numpy as np

from lenet_jax.data import Dataset
from lenet_jax.parallel import Strategy

CHUNK_BYTES = 256 * 2**20


def batch_indices(order: np.ndarray, batch_size: int, index: int, share: slice) -> np.ndarray:
    """This process's examples of batch `index` of an epoch whose example order is `order`."""
    return order[index * batch_size : (index + 1) * batch_size][share]


def epoch_batches(
    strategy: Strategy,
    dataset: Dataset,
    order: np.ndarray,
    batch_size: int,
    indices: range,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[tuple]:
    """Placed (images, labels) of the epoch's batches `indices`, placed a chunk at a time."""
    share = strategy.process_slice(batch_size)
    batch_bytes = max(1, dataset.train_images[:1].nbytes * batch_size)
    chunk = max(1, chunk_bytes // batch_bytes)
    for start in range(indices.start, indices.stop, chunk):
        placed = []
        for index in range(start, min(start + chunk, indices.stop)):
            idx = batch_indices(order, batch_size, index, share)
            images, labels = dataset.train_images[idx], dataset.train_labels[idx]
            placed.append(strategy.place_batch(images, labels))
        yield from placed
