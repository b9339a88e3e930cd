"""Datasets by name -> whole splits in memory as uint8 arrays.

Resolution order: local files (`config.data_dir`, else the spec's default directory, such
as Debian's `dataset-fashion-mnist`), then TFDS, which downloads and prepares on an online
machine. Normalisation is not done here: the compiled step does it on the device.
"""

import numpy as np

from lenet_jax.data import cache, idx, image_folder
from lenet_jax.data.dataset import Dataset
from lenet_jax.data.registry import DatasetSpec, get_spec
from lenet_jax.data.tfds_source import TfdsUnavailable, load_tfds
from lenet_jax.errors import UserError


def load_dataset(name: str, data_dir: str = "") -> Dataset:
    """Loads both splits of dataset `name`: local files first, then TFDS."""
    spec = get_spec(name)
    if spec.source == "image_folder" and data_dir:
        arrays, class_names = image_folder.load_image_folder(data_dir)
        return _dataset(spec, arrays, class_names, source=data_dir)
    if spec.source == "idx":
        directory = data_dir or spec.default_dir
        missing = _missing_idx_files(spec, directory) if directory else ["(no default directory)"]
        if not missing:
            return _dataset(spec, _load_idx(spec, directory), spec.class_names, source=directory)
        if data_dir:
            raise UserError(f"config.data_dir={data_dir!r}: no {name} files {missing} there")
    try:
        arrays = cache.load_or_build(f"tfds-{name}", lambda: load_tfds(name))
    except TfdsUnavailable as e:
        if spec.source == "idx":
            where = f"not in {spec.default_dir}" if spec.default_dir else "no local files"
            raise UserError(
                f"{name}: {where} and TFDS cannot provide it ({e}); {spec.install_hint}"
            ) from None
        raise UserError(f"{name}: TFDS cannot provide it ({e}); {spec.install_hint}") from None
    return _dataset(spec, arrays, spec.class_names, source="tfds")


def _missing_idx_files(spec: DatasetSpec, directory: str) -> list[str]:
    stems = [f.stem for pair in spec.idx_files.values() for f in pair]
    return [stem for stem in stems if idx.find(directory, stem) is None]


def _load_idx(spec: DatasetSpec, directory: str) -> dict[str, np.ndarray]:
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


def _dataset(
    spec: DatasetSpec, arrays: dict[str, np.ndarray], class_names, *, source: str
) -> Dataset:
    return Dataset(
        name=spec.name,
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int32),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int32),
        class_names=tuple(class_names),
        mean=spec.mean,
        std=spec.std,
        source=source,
    )
