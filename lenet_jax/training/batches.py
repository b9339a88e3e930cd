"""Cutting splits into batches, in one place: train, eval, predict and the benchmark use it.

Train batches follow the epoch's order; eval batches walk a split in order, the last one
padded to full size and masked, so every batch has one shape and the step compiles once.
Batches are gathered on the host and placed on the devices a chunk at a time, before the
chunk's first step: gathering and placing between two dispatches puts host work on the
cores XLA:CPU computes on, and slows the step by more than the work itself costs. A chunk
holds at most `CHUNK_BYTES` of images: a whole epoch of the datasets shipped here.

A streamed split (`data.streaming`) is too large for that: its batches are read, decoded
and placed on a background thread, `PREFETCH_BATCHES` ahead of the step, so the step never
waits on the disk.
"""

import queue
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from lenet_jax.data.streaming import is_streamed
from lenet_jax.training.parallel import Strategy

CHUNK_BYTES = 256 * 2**20
PREFETCH_BATCHES = 4


def batch_indices(order: np.ndarray, batch_size: int, index: int, share: slice) -> np.ndarray:
    """This process's examples of batch `index` of an epoch whose example order is `order`.

    A population's own orders (N, examples) give (batch, N) indices: batch-major, so every
    strategy splits the batch over devices as it splits one model's.
    """
    return order[..., index * batch_size : (index + 1) * batch_size].T[share]


def _placed(strategy: Strategy, images, host_batches: Iterable, batch_size: int, chunk_bytes):
    """`host_batches` (tuples of arrays) placed: prefetched on a thread if `images` is
    streamed, else a chunk at a time."""
    if is_streamed(images):
        return _prefetched(strategy, host_batches, PREFETCH_BATCHES)
    return _chunked(strategy, host_batches, images[:1].nbytes * batch_size, chunk_bytes)


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_DONE = object()


def _prefetched(strategy: Strategy, host_batches: Iterable[tuple], depth: int):
    """Reads and places `host_batches` on a background thread, up to `depth` ahead.

    An error there is raised here, at the batch it stopped; a consumer that stops early
    (a preemption, a failed step) stops the thread at its next batch.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for arrays in host_batches:
                if not put(strategy.place_batch(*arrays)):
                    return
            put(_DONE)
        except BaseException as e:  # handed to the consumer, which raises it
            put(_Failed(e))

    thread = threading.Thread(target=produce, name="lenet_jax-prefetch", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()


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
    """Placed (images, labels) of the epoch's batches `indices`, placed a chunk at a time."""
    share = strategy.process_slice(batch_size)

    def host():
        for index in indices:
            idx = batch_indices(order, batch_size, index, share)
            yield images[idx], labels[idx]

    return _placed(strategy, images, host(), batch_size, chunk_bytes)


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

    def host():
        for start in range(0, n, batch_size):
            idx = np.arange(start, start + batch_size)
            mask = idx < n
            idx = np.where(mask, idx, 0)[share]
            yield images[idx], labels[idx], mask[share]

    return _placed(strategy, images, host(), batch_size, chunk_bytes)
