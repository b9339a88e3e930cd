"""Image-folder loading: layout, labels, exact PNG pixels, the cache, and each bad input.

The CIFAR-10 test at the end reads the shared JPEG archive when it is present (about 5 s:
it extracts only the test split and ten train images per class).
"""

import importlib.util
import os
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet_jax import data
from lenet_jax.data import image_folder
from lenet_jax.data.image_folder import load_image_folder
from lenet_jax.errors import UserError

CIFAR_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
CLASSES = ("dog", "ant", "cat")  # created unsorted: labels must follow the sorted names
COUNTS = {"train": 3, "test": 2}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_JAX_CACHE", str(tmp_path / "cache"))


def _save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(path)


def _make_folder(root: Path, *, shape=(8, 8, 3), seed: int = 0) -> dict[Path, np.ndarray]:
    """Per class and split, PNGs then one JPEG; returns the pixels written to each PNG."""
    rng = np.random.default_rng(seed)
    pngs = {}
    for split, count in COUNTS.items():
        for name in CLASSES:
            for i in range(count):
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                path = root / split / name / (f"{i}.png" if i < count - 1 else f"{i}.jpg")
                _save(path, pixels)
                if path.suffix == ".png":
                    pngs[path] = pixels
    return pngs


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "images"
    _make_folder(root)
    return root


def test_shapes_dtypes_and_sorted_labels(folder):
    arrays, class_names = load_image_folder(str(folder))
    assert class_names == ("ant", "cat", "dog")
    assert sorted(arrays) == ["test_images", "test_labels", "train_images", "train_labels"]
    for split, count in COUNTS.items():
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        assert images.shape == (3 * count, 8, 8, 3) and images.dtype == np.uint8
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], count))


def test_png_pixels_round_trip_exactly(tmp_path):
    root = tmp_path / "images"
    pngs = _make_folder(root)
    arrays, _ = load_image_folder(str(root))
    # Within a split: classes sorted (ant, cat, dog), then files sorted; "0.png" comes first.
    for split, count in COUNTS.items():
        for label, name in enumerate(sorted(CLASSES)):
            expected = pngs[root / split / name / "0.png"]
            np.testing.assert_array_equal(arrays[f"{split}_images"][label * count], expected)


def test_grayscale_keeps_one_channel(tmp_path):
    root = tmp_path / "gray"
    _make_folder(root, shape=(8, 8, 1))
    arrays, _ = load_image_folder(str(root))
    assert arrays["train_images"].shape == (9, 8, 8, 1)


def test_other_modes_become_rgb(folder):
    rgba = np.random.default_rng(1).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    _save(folder / "train" / "ant" / "0.png", rgba)
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30])
    palette.save(folder / "train" / "cat" / "0.png")
    Image.new("CMYK", (8, 8)).save(folder / "train" / "dog" / "2.jpg")
    arrays, _ = load_image_folder(str(folder))
    assert arrays["train_images"].shape == (9, 8, 8, 3)
    np.testing.assert_array_equal(arrays["train_images"][0], rgba[..., :3])
    np.testing.assert_array_equal(arrays["train_images"][3], np.full((8, 8, 3), [10, 20, 30]))


def test_hidden_entries_and_top_level_files_are_ignored(folder):
    (folder / "README.txt").write_text("about this data")
    (folder / "train" / "ant" / ".DS_Store").write_bytes(b"\0junk")
    (folder / "test" / ".hidden_class").mkdir()
    arrays, class_names = load_image_folder(str(folder))
    assert class_names == ("ant", "cat", "dog")
    assert len(arrays["train_images"]) == 9


def test_second_load_comes_from_the_cache(folder, tmp_path, monkeypatch):
    first, names = load_image_folder(str(folder))
    assert len(list((tmp_path / "cache").glob("image_folder-*.npz"))) == 1

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(image_folder, "_decode", no_decoding)
    second, cached_names = load_image_folder(str(folder))
    assert cached_names == names and all(type(name) is str for name in cached_names)
    assert sorted(second) == sorted(first)
    for key in first:
        np.testing.assert_array_equal(second[key], first[key])
        assert second[key].dtype == first[key].dtype


def test_class_names_round_trip_through_npz_without_pickle(tmp_path):
    names = np.array(["airplane", "T-shirt/top", "ümlaut"], dtype="<U11")
    np.savez(tmp_path / "names.npz", class_names=names)
    with np.load(tmp_path / "names.npz", allow_pickle=False) as stored:
        np.testing.assert_array_equal(stored["class_names"], names)


def test_a_changed_folder_is_decoded_again(folder):
    load_image_folder(str(folder))
    _save(folder / "train" / "cat" / "9.png", np.zeros((8, 8, 3), np.uint8))
    arrays, _ = load_image_folder(str(folder))
    assert len(arrays["train_images"]) == 10


def _error(root: Path) -> str:
    with pytest.raises(UserError) as raised:
        load_image_folder(str(root))
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_missing_root(tmp_path):
    assert str(tmp_path / "nowhere") in _error(tmp_path / "nowhere")


def test_missing_split(folder):
    for path in (folder / "test").glob("*/*"):
        path.unlink()
    for path in (folder / "test").glob("*"):
        path.rmdir()
    (folder / "test").rmdir()
    assert "'test'" in _error(folder)


@pytest.mark.parametrize(
    "content",
    [b"this is not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 20],
    ids=["text", "bad-png"],
)
def test_non_image_file_is_named(folder, content):
    bad = folder / "train" / "cat" / "5.png"
    bad.write_bytes(content)
    assert str(bad) in _error(folder)


def test_truncated_jpeg_is_named(folder):
    path = folder / "test" / "dog" / "1.jpg"
    path.write_bytes(path.read_bytes()[:200])
    assert str(path) in _error(folder)


def test_different_class_sets_are_named(folder):
    _save(folder / "train" / "bee" / "0.png", np.zeros((8, 8, 3), np.uint8))
    message = _error(folder)
    assert "bee" in message and "only in train" in message


def test_split_without_classes(folder):
    (folder / "empty" / "train").mkdir(parents=True)
    (folder / "empty" / "test").mkdir()
    assert "class folders" in _error(folder / "empty")


def test_split_without_images(folder):
    for path in (folder / "test").glob("*/*"):
        path.unlink()
    assert "no images" in _error(folder)


def test_class_without_images_is_named(folder):
    for path in (folder / "test" / "cat").glob("*"):
        path.unlink()
    message = _error(folder)
    assert "'cat'" in message and "no images" in message


@pytest.mark.parametrize("shape", [(9, 8, 3), (8, 8, 1)], ids=["size", "channels"])
def test_mixed_shapes_name_the_file_and_both_shapes(folder, shape):
    odd = folder / "test" / "cat" / "7.png"
    _save(odd, np.zeros(shape, np.uint8))
    message = _error(folder)
    assert str(odd) in message and str(shape) in message and str((8, 8, 3)) in message


def _extract_cifar_test_split(archive: Path, destination: Path) -> None:
    """A tenth of test/ (its first 100 images per class), plus ten train images per class
    (the loader needs both splits): the loader's whole path on the real JPEGs, without the
    seconds that extracting and decoding all 10,000 test images would add."""
    wanted = re.compile(r"(test/[^/]+/00\d\d\.jpg|train/[^/]+/000\d\.jpg)$")
    with tarfile.open(archive) as tar:
        members = [m for m in tar if m.isfile() and wanted.match(m.name)]
        tar.extractall(destination, members=members, filter="data")


@pytest.mark.requires(CIFAR_ARCHIVE.is_file(), f"{CIFAR_ARCHIVE} is not present")
def test_cifar10_jpeg_test_split(tmp_path):
    root = tmp_path / "cifar10-jpeg"
    _extract_cifar_test_split(CIFAR_ARCHIVE, root)
    arrays, class_names = load_image_folder(str(root))
    assert tuple(class_names) == data.DATASETS["cifar10"].class_names
    assert arrays["test_images"].shape == (1_000, 32, 32, 3)
    assert arrays["test_images"].dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(arrays["test_labels"]), [100] * 10)
    assert arrays["train_images"].shape == (100, 32, 32, 3)
    assert os.listdir(tmp_path / "cache")  # cached for the next load


def _prepare_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "prepare_cifar10.py"
    spec = importlib.util.spec_from_file_location("prepare_cifar10", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_script_extracts_once_and_leaves_no_partial_folder(folder, tmp_path, capsys):
    archive = tmp_path / "small.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(folder / split, arcname=split)
    destination = tmp_path / "out" / "cifar10-jpeg"
    prepare = _prepare_script()
    prepare.main(["--archive", str(archive), "--dest", str(destination)])
    assert capsys.readouterr().out.splitlines()[-1] == str(destination)
    assert os.listdir(tmp_path / "out") == ["cifar10-jpeg"]
    arrays, _ = load_image_folder(str(destination))
    assert len(arrays["train_images"]) == 9
    archive.unlink()  # a second run must not need it
    assert prepare.prepare(str(archive), str(destination)) == str(destination)
    with pytest.raises(UserError, match="no archive"):
        prepare.prepare(str(archive), str(tmp_path / "elsewhere"))
