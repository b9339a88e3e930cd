"""Data: the dataset registry, readers for IDX files, image folders and TFDS, and a cache.

`load_dataset(name, data_dir)` returns a `Dataset` with both splits in memory as uint8.
"""

from lenet_jax.data.dataset import Dataset
from lenet_jax.data.loading import load_dataset
from lenet_jax.data.registry import DATASETS, DatasetSpec, get_spec, known_datasets

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "get_spec", "known_datasets", "load_dataset"]
