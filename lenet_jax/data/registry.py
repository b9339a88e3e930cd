"""The dataset registry: one spec per dataset, the single place for a dataset's facts.

Loading (`loading.py`), `summary` (the input shape), `predict` (the image shape and class
names) and the benchmark all read a dataset's spec from here, so adding a dataset with
local files is one entry in `DATASETS`. Any other TFDS image-classification dataset gets
its spec from its TFDS builder (`tfds_source.spec`, through `loading.get_spec`), with mean
and std computed on its train split.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class IdxFile:
    stem: str
    raw_sha256: str | None  # of the un-gzipped original, where known
    gz_sha256: str | None  # of the upstream .gz, as registered by TFDS
    # The upstream .gz header's mtime. Debian ships the same compressed payload under a
    # header of its own; with this, the upstream file is rebuilt byte for byte.
    gz_mtime: int | None = None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the toolkit knows of a dataset before reading any of it.

    `source` says what local files look like: "idx" (four MNIST-style IDX files in a
    folder, checked against `idx_files`' checksums), "image_folder"
    (`<dir>/<split>/<class>/<image>`), or "tfds" (none: TFDS only). TFDS, by the same name,
    is every dataset's fallback.
    """

    name: str
    source: str  # "idx" | "image_folder" | "tfds"
    image_shape: tuple[int, int, int]  # H, W, C
    class_names: tuple[str, ...]  # an image folder's own class folders take precedence
    mean: tuple[float, ...] | None  # per channel, on the [0, 1] scale; None = computed
    std: tuple[float, ...] | None  # on the train split when loaded
    install_hint: str
    default_dir: str | None = None
    idx_files: dict[str, tuple[IdxFile, IdxFile]] | None = None  # split -> (images, labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


_UNIT_SCALE = {"mean": (0.0,), "std": (1.0,)}  # d2l feeds MNIST-style images on [0, 1]

FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    source="idx",
    image_shape=(28, 28, 1),
    class_names=(
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
    ),
    **_UNIT_SCALE,
    install_hint="apt-get install dataset-fashion-mnist, or set --config.data_dir",
    default_dir="/usr/share/datasets/fashion-mnist",
    idx_files={
        "train": (
            IdxFile(
                "train-images-idx3-ubyte",
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                1504176606,
            ),
            IdxFile(
                "train-labels-idx1-ubyte",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                1504176606,
            ),
        ),
        "test": (
            IdxFile(
                "t10k-images-idx3-ubyte",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                1504176627,
            ),
            IdxFile(
                "t10k-labels-idx1-ubyte",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                1504176627,
            ),
        ),
    },
)

MNIST = DatasetSpec(
    name="mnist",
    source="idx",
    image_shape=(28, 28, 1),
    class_names=tuple(str(d) for d in range(10)),
    **_UNIT_SCALE,
    install_hint="put the four upstream MNIST .gz files in a folder and set --config.data_dir",
    idx_files={
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
)

CIFAR10 = DatasetSpec(
    name="cifar10",
    source="image_folder",
    image_shape=(32, 32, 3),
    class_names=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    mean=(0.4914, 0.4822, 0.4465),  # the canonical CIFAR-10 train-split statistics
    std=(0.2470, 0.2435, 0.2616),
    install_hint="set --config.data_dir to an image folder, e.g. "
    "$(python scripts/prepare_cifar10.py)",
)

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (FASHION_MNIST, MNIST, CIFAR10)}


def known_datasets() -> list[str]:
    return sorted(DATASETS)
