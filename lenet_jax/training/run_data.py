"""The dataset a run trains and evaluates on: loaded as the config names it, its classes
selected, cut to `num_*_examples` and checked against the batch size, and, for alternating
flips, half its train split mirrored where they start. Each mistake is one line naming the
config field."""

import dataclasses

import ml_collections

from lenet_jax.data import Dataset, load_dataset
from lenet_jax.data.streaming import is_streamed
from lenet_jax.errors import UserError
from lenet_jax.training import augment, distributed


def load_data(config: ml_collections.ConfigDict, *, subset: bool = True) -> Dataset:
    """The config's dataset; with `subset`, cut to `num_*_examples` and checked against the
    batch size, as the run that trains on it sees it (and announced, as training does)."""
    dataset = load_dataset(
        config.dataset,
        config.data_dir,
        train_split=config.train_split,
        eval_split=config.eval_split,
        tfds_data_dir=config.tfds_data_dir,
        max_in_memory_mb=config.max_in_memory_mb,
    )
    if config.classes:
        dataset = select_classes(dataset, tuple(config.classes))
    if not subset:
        return dataset

    def described(split: str, images) -> str:
        return split + (" (streamed from disk)" if is_streamed(images) else "")

    distributed.log(
        f"loaded {dataset.name} from {dataset.source}: {len(dataset.train_labels)} "
        f"{described(config.train_split, dataset.train_images)}, {len(dataset.test_labels)} "
        f"{described(config.eval_split, dataset.test_images)} examples"
    )
    for field, split in (("num_train_examples", "train"), ("num_test_examples", "test")):
        available = len(dataset.split(split)[1])
        if not 0 <= config[field] <= available:
            raise UserError(f"config.{field}={config[field]}: expected 0 (all) to {available}")
    dataset = dataset.take(config.num_train_examples, config.num_test_examples)
    if config.batch_size > len(dataset.train_labels):
        raise UserError(
            f"config.batch_size={config.batch_size} is larger than the "
            f"{len(dataset.train_labels)} training examples of {dataset.name}"
        )
    return dataset


def select_classes(dataset: Dataset, classes: tuple[int, ...]) -> Dataset:
    """`config.classes` applied, with a one-line error for a class the dataset lacks."""
    if max(classes) >= dataset.num_classes:
        raise UserError(
            f"config.classes={classes}: {dataset.name} has classes 0 to "
            f"{dataset.num_classes - 1} ({', '.join(dataset.class_names)})"
        )
    return dataset.select_classes(classes)


def alternating_flips_start(dataset: Dataset, seed: int) -> Dataset:
    """`dataset` with the fixed random half of its train split mirrored that alternating
    flips start from (`augment.mirror_half`)."""
    if is_streamed(dataset.train_images):
        raise UserError(
            "config.augment.flip_alternating=True mirrors half the train split in memory, "
            "but the train split is streamed (larger than config.max_in_memory_mb); use "
            "config.augment.flip_alternating=False"
        )
    return dataclasses.replace(
        dataset, train_images=augment.mirror_half(dataset.train_images, seed)
    )
