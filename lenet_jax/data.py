"""Datasets by TFDS name -> whole splits in memory as uint8 arrays.

Resolution order: local files (`config.data_dir`, else the dataset's default directory,
such as Debian's `dataset-fashion-mnist`), then TFDS, which downloads and prepares on an
online machine. Normalisation is not done here: the compiled step does it on device.
"""

import dataclasses
import socket

import numpy as np

from lenet_jax import cache, idx, image_folder
from lenet_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Both splits of one dataset; images are uint8 NHWC, labels int32."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    source: str  # where the arrays came from, for the log

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])

    def take(self, num_train: int = 0, num_test: int = 0) -> "Dataset":
        """A fixed random subset of each split (0 = all of it), for smoke runs.

        Random rather than the first examples: image folders are sorted by class.
        """

        def subset(images, labels, n):
            if not n or n >= len(labels):
                return images, labels
            keep = np.sort(np.random.default_rng(0).permutation(len(labels))[:n])
            return images[keep], labels[keep]

        train_images, train_labels = subset(self.train_images, self.train_labels, num_train)
        test_images, test_labels = subset(self.test_images, self.test_labels, num_test)
        return dataclasses.replace(
            self,
            train_images=train_images,
            train_labels=train_labels,
            test_images=test_images,
            test_labels=test_labels,
        )

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"unknown split {name!r}; known: ['test', 'train']")


@dataclasses.dataclass(frozen=True)
class IdxFile:
    stem: str
    raw_sha256: str | None  # of the un-gzipped original, where known
    gz_sha256: str | None  # of the upstream .gz, as registered by TFDS


@dataclasses.dataclass(frozen=True)
class IdxSpec:
    """An MNIST-style dataset stored as four IDX files."""

    class_names: tuple[str, ...]
    files: dict[str, tuple[IdxFile, IdxFile]]  # split -> (images, labels)
    default_dir: str | None
    install_hint: str


_FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

IDX_DATASETS: dict[str, IdxSpec] = {
    "fashion_mnist": IdxSpec(
        class_names=_FASHION_CLASSES,
        files={
            "train": (
                IdxFile(
                    "train-images-idx3-ubyte",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                IdxFile(
                    "train-labels-idx1-ubyte",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
            ),
            "test": (
                IdxFile(
                    "t10k-images-idx3-ubyte",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                IdxFile(
                    "t10k-labels-idx1-ubyte",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            ),
        },
        default_dir="/usr/share/datasets/fashion-mnist",
        install_hint="apt-get install dataset-fashion-mnist, or set --config.data_dir",
    ),
    "mnist": IdxSpec(
        class_names=tuple(str(d) for d in range(10)),
        files={
            "train": (
                IdxFile(
                    "train-images-idx3-ubyte",
                    None,
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                IdxFile(
                    "train-labels-idx1-ubyte",
                    None,
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
            ),
            "test": (
                IdxFile(
                    "t10k-images-idx3-ubyte",
                    None,
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                IdxFile(
                    "t10k-labels-idx1-ubyte",
                    None,
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            ),
        },
        default_dir=None,
        install_hint="put the four upstream MNIST .gz files in a folder and set --config.data_dir",
    ),
}


@dataclasses.dataclass(frozen=True)
class FolderSpec:
    """A dataset read from an image folder `<data_dir>/<split>/<class>/<image>` offline."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    install_hint: str


FOLDER_DATASETS: dict[str, FolderSpec] = {
    "cifar10": FolderSpec(
        mean=(0.4914, 0.4822, 0.4465),  # the canonical CIFAR-10 train-split statistics
        std=(0.2470, 0.2435, 0.2616),
        install_hint="set --config.data_dir to an image folder, e.g. "
        "$(python scripts/prepare_cifar10.py)",
    ),
}


def known_datasets() -> list[str]:
    return sorted([*IDX_DATASETS, *FOLDER_DATASETS])


def load_dataset(name: str, data_dir: str = "") -> Dataset:
    """Loads both splits of dataset `name`: local files first, then TFDS."""
    if name in FOLDER_DATASETS:
        return _load_folder_dataset(name, FOLDER_DATASETS[name], data_dir)
    if name not in IDX_DATASETS:
        raise UserError(f"config.dataset: unknown dataset {name!r}; known: {known_datasets()}")
    spec = IDX_DATASETS[name]
    directory = data_dir or spec.default_dir
    missing = _missing_idx_files(spec, directory) if directory else ["(no default directory)"]
    if not missing:
        return _load_idx(name, spec, directory)
    if data_dir:
        raise UserError(f"config.data_dir={data_dir!r}: no {name} files {missing} there")
    try:
        arrays = cache.load_or_build(f"tfds-{name}", lambda: _load_tfds(name))
    except TfdsUnavailable as e:
        where = f"not in {spec.default_dir}" if spec.default_dir else "no local files"
        raise UserError(
            f"{name}: {where} and TFDS cannot provide it ({e}); {spec.install_hint}"
        ) from None
    return _dataset(name, arrays, spec.class_names, *_UNIT_SCALE, source="tfds")


def _load_folder_dataset(name: str, spec: FolderSpec, data_dir: str) -> Dataset:
    if data_dir:
        arrays, class_names = image_folder.load_image_folder(data_dir)
        source = data_dir
    else:
        try:
            arrays = cache.load_or_build(f"tfds-{name}", lambda: _load_tfds(name))
        except TfdsUnavailable as e:
            raise UserError(f"{name}: TFDS cannot provide it ({e}); {spec.install_hint}") from None
        class_names, source = _tfds_class_names(name), "tfds"
    return _dataset(name, arrays, tuple(class_names), spec.mean, spec.std, source=source)


def _tfds_class_names(name: str) -> tuple[str, ...]:
    import tensorflow_datasets as tfds

    return tuple(tfds.builder(name).info.features["label"].names)


def _missing_idx_files(spec: IdxSpec, directory: str) -> list[str]:
    stems = [f.stem for pair in spec.files.values() for f in pair]
    return [stem for stem in stems if idx.find(directory, stem) is None]


def _load_idx(name: str, spec: IdxSpec, directory: str) -> Dataset:
    arrays = {}
    for split, (images_file, labels_file) in spec.files.items():
        for kind, file in (("images", images_file), ("labels", labels_file)):
            path = idx.find(directory, file.stem)
            data = idx.read_verified(path, raw_sha256=file.raw_sha256, gz_sha256=file.gz_sha256)
            arrays[f"{split}_{kind}"] = idx.parse(data, path)
    for split in spec.files:
        arrays[f"{split}_images"] = arrays[f"{split}_images"][..., None]  # NHW -> NHWC
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise UserError(f"{directory}: {split} images and labels differ in count")
    return _dataset(name, arrays, spec.class_names, *_UNIT_SCALE, source=directory)


_UNIT_SCALE = ((0.0,), (1.0,))  # d2l feeds MNIST-style images on the [0, 1] scale


def _dataset(
    name: str,
    arrays: dict[str, np.ndarray],
    class_names: tuple[str, ...],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    *,
    source: str,
) -> Dataset:
    return Dataset(
        name=name,
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int32),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int32),
        class_names=class_names,
        mean=mean,
        std=std,
        source=source,
    )


class TfdsUnavailable(Exception):
    """TFDS has no prepared copy and cannot download one here."""


def _load_tfds(name: str) -> dict[str, np.ndarray]:
    import tensorflow_datasets as tfds

    arrays = {}
    for split in ("train", "test"):
        source = _tfds_source(tfds, name, split)
        examples = [source[i] for i in range(len(source))]
        arrays[f"{split}_images"] = np.stack([np.asarray(ex["image"]) for ex in examples])
        arrays[f"{split}_labels"] = np.asarray([ex["label"] for ex in examples], np.int32)
    return arrays


def _tfds_source(tfds, name: str, split: str):
    """`tfds.data_source`, preparing the dataset first where TensorFlow and a network allow.

    Checked up front: offline, TFDS's own download would retry for minutes before failing.
    """
    try:
        return tfds.data_source(name, split=split, download=False)
    except Exception as not_prepared:  # TFDS raises several types for "not prepared"
        reason = f"[{type(not_prepared).__name__}]"
    try:
        import tensorflow  # noqa: F401  (stock builders need it to download and prepare)
    except ImportError:
        raise TfdsUnavailable(
            f"not prepared, and preparing needs TensorFlow: pip install 'lenet_jax[tf]' {reason}"
        ) from None
    if not _online():
        raise TfdsUnavailable("not prepared, and there is no network to download it")
    try:
        return tfds.data_source(name, split=split, download=True)
    except Exception as e:
        raise TfdsUnavailable(f"download failed: {type(e).__name__}: {e}") from None


def _online(host: str = "storage.googleapis.com") -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
