"""Dataset resolution: local IDX files with checksums, TFDS as the fallback, clear errors."""

import dataclasses
import gzip
import shutil

import numpy as np
import pytest
from conftest import FASHION_DIR, requires_fashion, write_idx

from lenet_jax import data
from lenet_jax.errors import UserError


@requires_fashion
def test_fashion_mnist_loads_from_debian_files():
    ds = data.load_dataset("fashion_mnist")  # its speed: scripts/data_load_bench.py
    assert ds.train_images.shape == (60_000, 28, 28, 1) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (10_000, 28, 28, 1)
    assert ds.train_labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(ds.test_labels), [1000] * 10)
    assert ds.class_names[0] == "T-shirt/top" and ds.num_classes == 10


@requires_fashion
def test_checksum_mismatch_names_the_file(tmp_path):
    for f in FASHION_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one wrong label
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.gz: SHA-256"):
        data.load_dataset("fashion_mnist", str(tmp_path))


@requires_fashion
def test_ungzipped_originals_are_accepted(tmp_path):
    for f in FASHION_DIR.iterdir():
        (tmp_path / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))
    ds = data.load_dataset("fashion_mnist", str(tmp_path))
    assert ds.train_images.shape == (60_000, 28, 28, 1)


def test_local_idx_files_round_trip(tiny_mnist_dir):
    ds = data.load_dataset("mnist", str(tiny_mnist_dir))
    assert ds.train_images.shape == (512, 28, 28, 1)
    assert ds.test_labels.shape == (256,)
    assert ds.source == str(tiny_mnist_dir)


def test_gzipped_and_raw_files_give_the_same_arrays(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28) % 251
    write_idx(tmp_path / "raw", images)
    write_idx(tmp_path / "packed", images, gz=True)
    from lenet_jax.data import idx

    for name in ("raw", "packed.gz"):
        path = str(tmp_path / name)
        parsed = idx.parse(idx.read_verified(path, raw_sha256=None, gz_sha256=None), path)
        np.testing.assert_array_equal(parsed, images)


def test_truncated_idx_file_is_named(tiny_mnist_dir, tmp_path):
    for f in tiny_mnist_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    victim = tmp_path / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(UserError, match="train-images-idx3-ubyte: IDX header"):
        data.load_dataset("mnist", str(tmp_path))


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(
        UserError, match=r"config.dataset: unknown dataset 'imagenet'.*fashion_mnist"
    ):
        data.load_dataset("imagenet")


def test_data_dir_without_files_says_which_are_missing(tmp_path):
    with pytest.raises(
        UserError, match=r"config.data_dir=.*no mnist files.*train-images-idx3-ubyte"
    ):
        data.load_dataset("mnist", str(tmp_path))


def test_missing_data_offline_says_how_to_get_it(monkeypatch, tmp_path):
    spec = data.DATASETS["fashion_mnist"]
    absent = dataclasses.replace(spec, default_dir=str(tmp_path / "absent"))
    monkeypatch.setitem(data.DATASETS, "fashion_mnist", absent)
    with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
        data.load_dataset("fashion_mnist", tfds_data_dir=str(tmp_path / "tfds"))


def test_take_cuts_both_splits():
    ds = data.Dataset(
        "x",
        np.zeros((10, 2, 2, 1), np.uint8),
        np.arange(10),
        np.zeros((6, 2, 2, 1), np.uint8),
        np.arange(6),
        ("a",),
        (0.0,),
        (1.0,),
        "memory",
    )
    small = ds.take(4, 0)
    assert len(small.train_labels) == 4 and len(small.test_labels) == 6


def test_a_local_format_is_one_reader_file(tmp_path, monkeypatch):
    """`lenet_jax/data/readers/`: a file with `SOURCE` and `read` is a format; a dataset
    whose spec names it loads through it, and its arrays reach the Dataset unchanged."""
    from lenet_jax.data import readers
    from lenet_jax.data.registry import DATASETS, DatasetSpec

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "npz_arrays.py").write_text(
        "import numpy as np\n"
        "SOURCE = 'npz'\n"
        "def read(spec, data_dir):\n"
        "    if not data_dir:\n"
        "        return None\n"
        "    with np.load(f'{data_dir}/data.npz') as f:\n"
        "        return {k: f[k] for k in f.files}, spec.class_names, data_dir\n"
    )
    monkeypatch.setattr(readers, "__path__", [*readers.__path__, str(plugins)])
    assert set(readers.readers()) == {"idx", "image_folder", "npz"}
    spec = DatasetSpec("tiny_npz", "npz", (4, 4, 1), ("a", "b"), (0.5,), (0.25,), "make it")
    monkeypatch.setitem(DATASETS, "tiny_npz", spec)
    rng = np.random.default_rng(0)
    arrays = {
        f"{split}_{kind}": value
        for split, n in (("train", 6), ("test", 4))
        for kind, value in (
            ("images", rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)),
            ("labels", rng.integers(0, 2, n)),
        )
    }
    np.savez(tmp_path / "data.npz", **arrays)
    dataset = data.load_dataset("tiny_npz", str(tmp_path))
    np.testing.assert_array_equal(dataset.train_images, arrays["train_images"])
    np.testing.assert_array_equal(dataset.test_labels, arrays["test_labels"])
    assert dataset.class_names == ("a", "b") and dataset.source == str(tmp_path)
