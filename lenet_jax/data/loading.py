"""Datasets by name -> the train and eval splits, as uint8 arrays (or streamed images).

Resolution order: local files (`data_dir`, else the spec's default directory, such as
Debian's `dataset-fashion-mnist`), read by the reader of the spec's format (`readers/`,
one file per format), then TFDS by the same name, which is also how any TFDS
image-classification dataset without a spec here is read. Normalisation is not done here:
the compiled step does it on the device with the dataset's mean and std.
"""

import hashlib
import json
import os

import numpy as np

from lenet_jax.data import cache, readers, streaming, tfds_source
from lenet_jax.data.dataset import Dataset
from lenet_jax.data.registry import DATASETS, DatasetSpec
from lenet_jax.data.splits import SplitSlice, parse_split
from lenet_jax.errors import UserError

DEFAULT_MAX_IN_MEMORY_MB = 4096
_ROLES = ("train", "test")  # the Dataset's fields: the train split and the eval split
_FIELDS = {"train": "train_split", "test": "eval_split"}


def get_spec(name: str, tfds_data_dir: str = "") -> DatasetSpec:
    """The spec of `name`: a registered one, else one made from its TFDS builder's info
    (which imports TFDS, as registered datasets do not)."""
    return DATASETS.get(name) or tfds_source.spec(name, tfds_data_dir)


def load_dataset(
    name: str,
    data_dir: str = "",
    *,
    train_split: str = "train",
    eval_split: str = "test",
    tfds_data_dir: str = "",
    max_in_memory_mb: float = DEFAULT_MAX_IN_MEMORY_MB,
) -> Dataset:
    """The train and eval splits of dataset `name`: local files first, then TFDS.

    Split names follow the dataset and may be sliced as TFDS slices (`train[:90%]`). A
    TFDS split whose decoded images exceed `max_in_memory_mb` is streamed, not held.
    """
    texts = {"train": train_split, "test": eval_split}
    slices = {role: parse_split(text, _FIELDS[role]) for role, text in texts.items()}
    spec = DATASETS.get(name)
    if spec is not None:
        local = readers.read_local(spec, data_dir)
        if local is not None:
            arrays, class_names, source = local
            return _dataset(spec.name, _sliced(arrays, slices, name), class_names, spec, source)
    try:
        return _load_tfds(name, spec, texts, tfds_data_dir, max_in_memory_mb)
    except tfds_source.TfdsUnavailable as e:
        if spec is None:
            raise UserError(f"{name}: TFDS cannot provide it ({e})") from None
        if spec.source == "idx":
            where = f"not in {spec.default_dir}" if spec.default_dir else "no local files"
            raise UserError(
                f"{name}: {where} and TFDS cannot provide it ({e}); {spec.install_hint}"
            ) from None
        raise UserError(f"{name}: TFDS cannot provide it ({e}); {spec.install_hint}") from None


# Local files (`readers`).


def _sliced(arrays: dict, slices: dict[str, SplitSlice], name: str) -> dict[str, np.ndarray]:
    """The configured splits cut out of a local source's `train` and `test` arrays."""
    out = {}
    for role, split in slices.items():
        if f"{split.name}_images" not in arrays:
            raise UserError(
                f"config.{_FIELDS[role]}={split.name!r}: {name} from local files has the "
                f"splits {sorted(_ROLES)}, sliced as TFDS slices, e.g. 'train[90%:]'"
            )
        images, labels = arrays[f"{split.name}_images"], arrays[f"{split.name}_labels"]
        cut = split.bounds(len(labels))
        out[f"{role}_images"], out[f"{role}_labels"] = images[cut], labels[cut]
        if not len(out[f"{role}_labels"]):
            raise UserError(f"config.{_FIELDS[role]}: the slice selects no examples of {name}")
    return out


# TFDS.


def _load_tfds(
    name: str, spec: DatasetSpec | None, texts: dict, data_dir: str, max_in_memory_mb: float
) -> Dataset:
    found = tfds_source.open_dataset(name, data_dir)
    if spec is not None and found.image_shape != spec.image_shape:
        raise UserError(
            f"{name}: the TFDS copy's images have shape {found.image_shape}; {name} images "
            f"are {spec.image_shape}"
        )
    sources = {role: tfds_source.data_source(found, texts[role]) for role in _ROLES}
    image_bytes = int(np.prod(found.image_shape))
    streamed = {
        role: len(sources[role]) * image_bytes > max_in_memory_mb * 2**20 for role in _ROLES
    }
    for role in _ROLES:
        if not len(sources[role]):
            raise UserError(f"config.{_FIELDS[role]}={texts[role]!r} selects no examples of {name}")

    def build() -> dict[str, np.ndarray]:
        return _read_splits(found, sources, texts, streamed, with_stats=spec is None)

    arrays = cache.load_or_build(_cache_key(found, texts, streamed), build)
    for role in _ROLES:
        if streamed[role]:
            arrays[f"{role}_images"] = streaming.StreamedImages(
                sources[role], found.image_key, found.image_shape
            )
    class_names = spec.class_names if spec is not None else arrays["class_names"]
    return _dataset(name, arrays, tuple(str(c) for c in class_names), spec, "tfds")


def _read_splits(
    found, sources: dict, texts: dict, streamed: dict, *, with_stats: bool
) -> dict[str, np.ndarray]:
    """One pass over each split: the labels; a held split's images; the train split's
    mean and std where they are computed. A streamed split's images are decoded only
    for those statistics, and not kept."""
    arrays = {}
    for role in _ROLES:
        stats = streaming.ChannelStats() if with_stats and role == "train" else None
        keep_images = not streamed[role]
        if keep_images or stats is not None:
            source, keys = sources[role], (found.image_key, found.label_key)
        else:
            source = tfds_source.data_source(found, texts[role], decode_images=False)
            keys = (found.label_key,)
        images, labels = [], []
        for chunk in streaming.read_chunks(source, keys):
            labels.append(chunk[found.label_key])
            if keep_images:
                images.append(chunk[found.image_key])
            if stats is not None:
                stats.add(chunk[found.image_key])
        arrays[f"{role}_labels"] = np.concatenate(labels)
        if keep_images:
            arrays[f"{role}_images"] = np.concatenate(images)
        if stats is not None:  # computed once, then cached with the arrays
            arrays["mean"], arrays["std"] = map(np.asarray, stats.result())
    arrays["class_names"] = np.asarray(found.class_names)
    return arrays


def _cache_key(found, texts: dict, streamed: dict) -> str:
    """Names what the entry was built from: the dataset, its version and prepared copy
    (where it is, and when it was written), the splits, and which splits are held."""
    info_file = os.path.join(found.data_dir, "dataset_info.json")
    written = os.stat(info_file).st_mtime_ns if os.path.exists(info_file) else 0
    identity = json.dumps(
        [os.path.abspath(found.data_dir), written, texts, streamed, found.image_key],
        sort_keys=True,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"tfds-{found.name.replace('/', '_')}-{found.version}-{digest}"


def _dataset(name: str, arrays: dict, class_names, spec: DatasetSpec | None, source: str):
    mean, std = (spec.mean, spec.std) if spec is not None else (arrays["mean"], arrays["std"])
    return Dataset(
        name=name,
        train_images=arrays["train_images"],
        train_labels=np.asarray(arrays["train_labels"]).astype(np.int32),
        test_images=arrays["test_images"],
        test_labels=np.asarray(arrays["test_labels"]).astype(np.int32),
        class_names=tuple(class_names),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        source=source,
    )
