"""The epoch loop's batches: the trainer's order, placed a chunk at a time."""

import dataclasses

import jax
import numpy as np
import pytest

from lenet_jax import data
from lenet_jax.config import base_config
from lenet_jax.training import batches, parallel


def _dataset(num: int = 40) -> data.Dataset:
    images = np.arange(num * 4, dtype=np.uint8).reshape(num, 2, 2, 1)
    return data.Dataset(
        "x", images, np.arange(num, dtype=np.int32), images[:4], np.arange(4), ("a",),
        (0.0,), (1.0,), "memory",
    )  # fmt: skip


@dataclasses.dataclass
class CountingStrategy(parallel.Strategy):
    """The single-device strategy, counting the batches it has placed."""

    placed: int = 0

    def place_batch(self, *arrays):
        self.placed += 1
        return super().place_batch(*arrays)


@pytest.mark.parametrize("strategy_name", ["single", "pmap", "sharded"])
def test_batches_follow_the_epoch_order_from_a_mid_epoch_start(strategy_name):
    ds, batch = _dataset(), 8  # 32 bytes of images per batch: chunks of 2 batches, then 1
    order = np.random.default_rng(0).permutation(40)
    strategy = parallel.create(strategy_name)
    got = list(
        batches.epoch_batches(
            strategy, ds.train_images, ds.train_labels, order, batch, range(2, 5), chunk_bytes=64
        )
    )
    assert len(got) == 3
    for index, (images, labels) in zip(range(2, 5), got):
        expected = order[index * batch : (index + 1) * batch]
        assert isinstance(images, jax.Array) and isinstance(labels, jax.Array)
        np.testing.assert_array_equal(np.asarray(labels).reshape(-1), expected)
        np.testing.assert_array_equal(
            np.asarray(images).reshape(-1, 2, 2, 1), ds.train_images[expected]
        )


def test_a_chunk_is_placed_only_when_its_first_batch_is_needed():
    ds, batch = _dataset(), 4  # 16 bytes of images per batch
    strategy = CountingStrategy()
    placed = batches.epoch_batches(
        strategy, ds.train_images, ds.train_labels, np.arange(40), batch, range(10), chunk_bytes=56
    )
    assert strategy.placed == 0
    next(placed)
    assert strategy.placed == 3  # the first chunk: the 3 whole batches 56 bytes hold
    for _ in range(3):
        next(placed)
    assert strategy.placed == 6
    assert len(list(placed)) == 6 and strategy.placed == 10


def test_a_batch_larger_than_a_chunk_is_placed_alone():
    strategy = CountingStrategy()
    placed = batches.epoch_batches(
        strategy, *_dataset().split("train"), np.arange(40), 8, range(5), chunk_bytes=1
    )
    next(placed)
    assert strategy.placed == 1


@pytest.mark.parametrize(
    "backend, batch_size, expected",
    [
        ("cpu", 64, 64),
        ("cpu", 256, 256),
        ("gpu", 64, 960),
        ("tpu", 256, 768),
        ("gpu", 200, 1000),  # up to 1000 examples: 1000 itself included
        ("gpu", 91, 910),  # not 1001
        ("gpu", 2048, 2048),
    ],
)
def test_auto_evaluates_at_the_train_batch_on_the_cpu_and_fills_an_accelerator(
    backend, batch_size, expected
):
    config = base_config()
    config.batch_size = batch_size
    assert config.eval_batch_size == 0  # auto is the default
    assert batches.eval_batch_size(config, backend) == expected
    assert expected % batch_size == 0  # so it divides over the devices as the train batch does
    config.eval_batch_size = 100
    assert batches.eval_batch_size(config, backend) == 100
