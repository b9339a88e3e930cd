"""TFDS: any image-classification dataset by name, read through `tfds.data_source`.

TensorFlow Datasets is imported only here, and only when a dataset has no local files, so
a run on local data never imports it. Reading needs no TensorFlow: a dataset prepared as
`array_record` is read by index (random access), which is also what lets a split larger
than memory be streamed (`streaming.py`). Preparing a stock dataset needs TensorFlow;
`scripts/prepare_tfds.py` prepares offline without it.

Where data lives is always passed explicitly (`data_dir`, "" for TFDS's own default),
because TFDS reads `TFDS_DATA_DIR` once, at import.
"""

import dataclasses
import difflib
import os

from lenet_jax.data.registry import DatasetSpec, known_datasets
from lenet_jax.data.tfds_preparation import manual_dir, preparation_blocker
from lenet_jax.errors import UserError, one_line

# TFDS's messages can list hundreds of names: a one-line error quotes this much of them.
_QUOTED = 400


class TfdsUnavailable(Exception):
    """TFDS has no readable copy of the dataset and cannot make one here."""


@dataclasses.dataclass(frozen=True)
class TfdsDataset:
    """A TFDS dataset's builder and the two features the toolkit trains on."""

    name: str  # as requested: `emnist/letters`
    builder: object  # tfds.core.DatasetBuilder
    image_key: str
    label_key: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]

    @property
    def version(self) -> str:
        return str(self.builder.info.version)

    @property
    def data_dir(self) -> str:
        return os.fspath(self.builder.data_dir)


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def spec(name: str, data_dir: str = "") -> DatasetSpec:
    """The spec of a dataset no registry entry describes, from its TFDS builder's info;
    mean and std are computed on its train split when it is loaded."""
    found = open_dataset(name, data_dir)
    return DatasetSpec(
        name=name,
        source="tfds",
        image_shape=found.image_shape,
        class_names=found.class_names,
        mean=None,
        std=None,
        install_hint="prepare it with TFDS, or offline: python scripts/prepare_tfds.py "
        f"{name} --image_folder DIR (into config.tfds_data_dir)",
    )


def open_dataset(name: str, data_dir: str = "") -> TfdsDataset:
    """The registered TFDS dataset `name` (`emnist/letters` names a config) and its image
    and label features; one error for an unknown name or a dataset it cannot train on."""
    tfds = _tfds()
    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except tfds.core.registered.DatasetNotFoundError:
        names = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name.split("/")[0], names, n=5, cutoff=0.6)
        hint = f"closest TFDS names: {close}" if close else "see tfds.list_builders()"
        raise UserError(
            f"config.dataset: unknown dataset {name!r}; known: {known_datasets()} (local "
            f"files) or a TFDS image-classification name; {hint}"
        ) from None
    except ValueError as e:  # an unknown config of a known dataset, with TFDS's suggestions
        raise UserError(f"config.dataset={name!r}: {one_line(str(e), _QUOTED)}") from None
    return _image_classification(name, builder)


def _image_classification(name: str, builder) -> TfdsDataset:
    """Picks the image and the label feature: the one `Image`, and the `ClassLabel` named
    `label` (else the only one); fixed-shape images only, so every batch has one shape."""
    tfds = _tfds()
    features = builder.info.features
    flat = {key: features[key] for key in features.keys()}
    images = [k for k, f in flat.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in flat.items() if isinstance(f, tfds.features.ClassLabel)]
    described = ", ".join(f"{k}: {type(f).__name__}" for k, f in flat.items())
    if len(images) != 1:
        raise UserError(
            f"{name}: not an image-classification dataset: it needs exactly one image "
            f"feature, and its features are {{{described}}}"
        )
    if "label" in labels:
        labels = ["label"]
    if len(labels) != 1:
        raise UserError(
            f"{name}: no class label to train on: it needs one ClassLabel feature (or one "
            f"named 'label'), and its features are {{{described}}}"
        )
    shape = tuple(flat[images[0]].shape)
    if len(shape) != 3 or None in shape:
        raise UserError(
            f"{name}: its images have shape {shape}; only fixed-shape (H, W, C) images "
            "are allowed, so that every batch has one shape"
        )
    label = flat[labels[0]]
    return TfdsDataset(name, builder, images[0], labels[0], shape, tuple(label.names))


def data_source(dataset: TfdsDataset, split: str, *, decode_images: bool = True):
    """A random-access source of `split` (TFDS slicing allowed), preparing the dataset
    first where this machine can; `decode_images=False` leaves the images encoded."""
    tfds = _tfds()
    builder = _readable(dataset)
    known = list(builder.info.splits.keys())
    decoders = None if decode_images else {dataset.image_key: tfds.decode.SkipDecoding()}
    try:
        return tfds.data_source(
            dataset.name,
            split=split,
            data_dir=os.fspath(builder.data_dir_root),
            download=False,
            decoders=decoders,
        )
    except (ValueError, KeyError) as e:
        raise UserError(
            f"{dataset.name}: cannot read split {split!r} ({one_line(str(e), _QUOTED)}); its "
            f"splits: {known}, sliced as TFDS slices, e.g. 'train[:90%]'"
        ) from None


def _readable(dataset: TfdsDataset):
    """The builder of a prepared `array_record` copy: prepared now if this machine can."""
    builder = dataset.builder
    if not builder.is_prepared():
        builder = _prepare(dataset)
    file_format = _file_format(builder)
    if file_format != "array_record":
        raise TfdsUnavailable(
            f"prepared in {builder.data_dir} as {file_format}, which tfds.data_source cannot "
            "read (it needs array_record); convert it with `tfds convert_format "
            f"--dataset_dir={builder.data_dir} --out_file_format=array_record` (needs "
            "TensorFlow), or prepare it again as array_record"
        )
    return builder


def _file_format(builder) -> str:
    file_format = builder.info.file_format
    return getattr(file_format, "value", str(file_format or "tfrecord"))


def _prepare(dataset: TfdsDataset):
    """Downloads (where needed and possible) and prepares the stock dataset as array_record."""
    tfds = _tfds()
    builder = dataset.builder
    blocker = preparation_blocker(builder)
    if blocker:
        raise TfdsUnavailable(f"not prepared in {builder.data_dir_root}, and {blocker}")
    prepared = tfds.builder(
        dataset.name, data_dir=os.fspath(builder.data_dir_root), file_format="array_record"
    )
    try:
        prepared.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir(builder))
        )
    except Exception as e:  # TFDS and the builders raise many types; one line says which
        reason = f"{type(e).__name__}: {one_line(str(e), _QUOTED)}"
        raise TfdsUnavailable(f"preparing it failed: {reason}") from None
    return prepared
