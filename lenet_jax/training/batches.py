"""Cutting splits into batches, in one place: train, eval, predict and the benchmark use it.

Train batches follow the epoch's order; eval batches walk a split in order, the last one
padded to full size and masked, so every batch has one shape and the step compiles once.
Batches are gathered on the host and placed on the devices a chunk at a time, before the
chunk's first step: gathering and placing between two dispatches puts host work on the
cores XLA:CPU computes on, and slows the step by more than the work itself costs. A chunk
holds at most `CHUNK_BYTES` of images: a whole epoch of the datasets shipped here.

A streamed split (`data.streaming`) is too large for that: its batches are read, decoded
and placed by grain, `PREFETCH_BATCHES` ahead of the step on `READ_THREADS` threads, so the
step never waits on the disk. Grain reads the batches this module defines (a `MapDataset`
of their indices): the epoch order, each process's share and a resume's first batch stay
the project's own, and equal the in-memory split's.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence

import jax
import ml_collections
import numpy as np

from lenet_jax.data.streaming import is_streamed
from lenet_jax.training.parallel import Strategy

CHUNK_BYTES = 256 * 2**20
PREFETCH_BATCHES = 4
# Two readers keep up with the step on a 2-core CPU where one fell behind (the README's
# Performance section, "Streaming a TFDS split from disk").
READ_THREADS = 2
# An accelerator's evaluation batch under `eval_batch_size=0`: up to this many examples.
ACCELERATOR_EVAL_EXAMPLES = 1000


def eval_batch_size(config: ml_collections.ConfigDict, backend: str | None = None) -> int:
    """The batch every evaluation and prediction of a run uses: `config.eval_batch_size`, or
    for 0 (auto) the fastest on this backend. On the CPU that is the train batch: a forward
    pass over a larger batch leaves the cache and runs slower per example (the README's
    Performance section, "Evaluation's batch on the CPU"). On an accelerator it is the
    largest multiple of the train batch up to `ACCELERATOR_EVAL_EXAMPLES`, which fills the
    device in few dispatches. A multiple of `batch_size` divides over the devices as it does.
    `backend`: JAX's default backend unless given.
    """
    if config.eval_batch_size:
        return config.eval_batch_size
    if (backend or jax.default_backend()) == "cpu":
        return config.batch_size
    return max(1, ACCELERATOR_EVAL_EXAMPLES // config.batch_size) * config.batch_size


def batch_indices(order: np.ndarray, batch_size: int, index: int, share: slice) -> np.ndarray:
    """This process's examples of batch `index` of an epoch whose example order is `order`.

    A population's own orders (N, examples) give (batch, N) indices: batch-major, so every
    strategy splits the batch over devices as it splits one model's.
    """
    return order[..., index * batch_size : (index + 1) * batch_size].T[share]


def _placed(
    strategy: Strategy, images, batches: Sequence, read: Callable, batch_size: int, chunk_bytes: int
):
    """The host batches `read(b)` of each `b` in `batches`, placed: prefetched by grain if
    `images` is streamed, else a chunk at a time."""
    if is_streamed(images):
        return _prefetched(strategy, batches, read)
    host_batches = (read(b) for b in batches)
    return _chunked(strategy, host_batches, images[:1].nbytes * batch_size, chunk_bytes)


def _prefetched(strategy: Strategy, batches: Sequence, read: Callable) -> Iterator[tuple]:
    """Reads and places `batches` on grain's threads, up to `PREFETCH_BATCHES` ahead, in
    order. An error there is raised here, at the batch it stopped; a consumer that stops
    early (a preemption, a failed step) closes the readers."""
    import grain  # only a streamed split needs it, and it takes most of a second to import

    placed = grain.MapDataset.source(batches).map(lambda b: strategy.place_batch(*read(b)))
    options = grain.ReadOptions(num_threads=READ_THREADS, prefetch_buffer_size=PREFETCH_BATCHES)
    iterator = iter(placed.to_iter_dataset(options))
    try:
        yield from iterator
    finally:
        iterator.close()


def _chunked(strategy: Strategy, host_batches: Iterable[tuple], batch_bytes: int, chunk_bytes):
    """Places `host_batches` (tuples of arrays) a chunk at a time; yields them placed."""
    chunk = max(1, chunk_bytes // max(1, batch_bytes))
    pending = []
    for arrays in host_batches:
        pending.append(arrays)
        if len(pending) == chunk:
            yield from [strategy.place_batch(*a) for a in pending]
            pending = []
    yield from [strategy.place_batch(*a) for a in pending]


def epoch_batches(
    strategy: Strategy,
    images: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    indices: range,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[tuple]:
    """Placed (images, labels) of the epoch's batches `indices`: a chunk at a time, or read
    ahead by grain for a streamed split."""
    share = strategy.process_slice(batch_size)
    batches = [batch_indices(order, batch_size, index, share) for index in indices]

    def read(idx):
        return images[idx], labels[idx]

    return _placed(strategy, images, batches, read, batch_size, chunk_bytes)


def eval_batches(
    strategy: Strategy,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    chunk_bytes: int = CHUNK_BYTES,
    *,
    share: slice | None = None,
) -> Iterator[tuple]:
    """Placed (images, labels, mask) covering the split in order; the last one padded.

    Each process takes its share of every batch, unless `share` says otherwise (one
    process predicting alone takes `slice(None)`).
    """
    share = strategy.process_slice(batch_size) if share is None else share
    n = len(labels)
    batches = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = idx < n
        batches.append((np.where(mask, idx, 0)[share], mask[share]))

    def read(batch):
        idx, mask = batch
        return images[idx], labels[idx], mask

    return _placed(strategy, images, batches, read, batch_size, chunk_bytes)
