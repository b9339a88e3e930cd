"""Data: the dataset registry, readers for IDX files, image folders and TFDS, and a cache.

`load_dataset(name, ...)` returns a `Dataset`: the train and eval splits as uint8 arrays, or,
for a TFDS split larger than the memory budget, images streamed by index.
"""

from lenet_jax.data.dataset import Dataset
from lenet_jax.data.loading import get_spec, load_dataset
from lenet_jax.data.registry import DATASETS, DatasetSpec, known_datasets

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "get_spec", "known_datasets", "load_dataset"]
