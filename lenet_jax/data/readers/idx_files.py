"""MNIST's format: four IDX files (train and test images and labels, gzipped or not) in a
folder, `config.data_dir` or the spec's default (Debian's dataset-fashion-mnist), each
checked against the checksums the spec registers."""

import numpy as np

from lenet_jax.data import idx
from lenet_jax.data.registry import DatasetSpec
from lenet_jax.errors import UserError

SOURCE = "idx"


def read(spec: DatasetSpec, data_dir: str):
    directory = data_dir or spec.default_dir
    missing = _missing(spec, directory) if directory else ["(no default directory)"]
    if not missing:
        return _arrays(spec, directory), spec.class_names, directory
    if data_dir:
        raise UserError(f"config.data_dir={data_dir!r}: no {spec.name} files {missing} there")
    return None


def _missing(spec: DatasetSpec, directory: str) -> list[str]:
    stems = [f.stem for pair in spec.idx_files.values() for f in pair]
    return [stem for stem in stems if idx.find(directory, stem) is None]


def _arrays(spec: DatasetSpec, directory: str) -> dict[str, np.ndarray]:
    arrays = {}
    for split, (images_file, labels_file) in spec.idx_files.items():
        for kind, file in (("images", images_file), ("labels", labels_file)):
            path = idx.find(directory, file.stem)
            data = idx.read_verified(path, raw_sha256=file.raw_sha256, gz_sha256=file.gz_sha256)
            arrays[f"{split}_{kind}"] = idx.parse(data, path)
    for split in spec.idx_files:
        arrays[f"{split}_images"] = arrays[f"{split}_images"][..., None]  # NHW -> NHWC
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise UserError(f"{directory}: {split} images and labels differ in count")
    return arrays
