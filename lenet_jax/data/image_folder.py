"""An image-folder dataset (`<root>/<split>/<class>/<image>`) -> uint8 arrays, offline.

Splits are "train" and "test"; a class's label is its position among the sorted class
names, as in TFDS's ImageFolder. Decoding thousands of small files is slow, so the arrays
are cached, keyed by the folder's path and a fingerprint of its listing: a changed folder
is decoded again.
"""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from lenet_jax.data import cache
from lenet_jax.errors import UserError

SPLITS = ("train", "test")
_CACHE_VERSION = 1  # bump when decoding changes, so old cache entries are not reused

Listing = dict[str, dict[str, list[str]]]  # split -> class name -> sorted image paths


def load_image_folder(root: str) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Both splits as {"train_images", "train_labels", "test_images", "test_labels"}.

    Images are uint8 NHWC (grayscale keeps one channel), labels int32; also returns the
    class names, whose sorted order gives the labels.
    """
    root = os.path.abspath(root)
    listing = _list(root)
    arrays = dict(cache.load_or_build(_cache_key(root, listing), lambda: _build(listing)))
    class_names = tuple(str(name) for name in arrays.pop("class_names"))
    return arrays, class_names


def _list(root: str) -> Listing:
    if not os.path.isdir(root):
        raise UserError(f"image folder {root} does not exist")
    listing = {split: _list_split(root, split) for split in SPLITS}
    train, test = set(listing["train"]), set(listing["test"])
    if train != test:
        only = {"train": sorted(train - test), "test": sorted(test - train)}
        differences = "; ".join(f"only in {s}: {names}" for s, names in only.items() if names)
        raise UserError(f"{root}: train and test have different classes ({differences})")
    return listing


def _list_split(root: str, split: str) -> dict[str, list[str]]:
    directory = os.path.join(root, split)
    if not os.path.isdir(directory):
        raise UserError(f"{root}: no {split!r} split folder ({directory} is missing)")
    classes = sorted(_visible(directory, dirs=True))
    if not classes:
        raise UserError(f"{directory}: no class folders (expected {split}/<class>/<image>)")
    listing = {}
    for name in classes:
        class_dir = os.path.join(directory, name)
        listing[name] = [os.path.join(class_dir, f) for f in sorted(_visible(class_dir))]
    if not any(listing.values()):
        raise UserError(f"{directory}: the {split} split has no images")
    for name, paths in listing.items():
        if not paths:
            raise UserError(f"{os.path.join(directory, name)}: class {name!r} has no images")
    return listing


def _visible(directory: str, *, dirs: bool = False) -> list[str]:
    """Names of the sub-folders (or files) of `directory`, skipping hidden ones."""
    with os.scandir(directory) as entries:
        return [
            e.name
            for e in entries
            if not e.name.startswith(".") and (e.is_dir() if dirs else e.is_file())
        ]


def _cache_key(root: str, listing: Listing) -> str:
    """Path plus names, sizes and mtimes: cheap to compute, and any edit changes it."""
    digest = hashlib.sha256(root.encode())
    paths = [path for classes in listing.values() for ps in classes.values() for path in ps]
    for path in paths:
        stat = os.stat(path)
        relative = os.path.relpath(path, root)
        digest.update(f"\0{relative}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    name = os.path.basename(root)[:40]  # readable, and short enough for any file system
    return f"image_folder-v{_CACHE_VERSION}-{name}-{digest.hexdigest()[:24]}"


def _build(listing: Listing) -> dict[str, np.ndarray]:
    class_names = sorted(listing["train"])
    arrays = {"class_names": np.array(class_names, dtype=f"<U{max(map(len, class_names))}")}
    expected = None  # the first train image's shape; every image must match it
    with ThreadPoolExecutor() as pool:
        for split in SPLITS:
            paths = [p for name in class_names for p in listing[split][name]]
            counts = [len(listing[split][name]) for name in class_names]
            images = _decode_all(pool, paths, expected)
            expected = images.shape[1:]
            arrays[f"{split}_images"] = images
            arrays[f"{split}_labels"] = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    return arrays


def _decode_all(
    pool: ThreadPoolExecutor, paths: list[str], expected: tuple[int, ...] | None
) -> np.ndarray:
    """Decodes `paths` in parallel into one preallocated NHWC array, checking every shape."""
    images = None
    for index, (path, image) in enumerate(zip(paths, pool.map(_decode, paths), strict=True)):
        if images is None:
            expected = expected or image.shape
            images = np.empty((len(paths), *expected), np.uint8)
        if image.shape != expected:
            pool.shutdown(cancel_futures=True)  # no point decoding the rest
            raise UserError(
                f"{path}: image shape {image.shape} differs from the expected {expected} "
                "(all images must share one size and channel count)"
            )
        images[index] = image
    return images


def _decode(path: str) -> np.ndarray:
    """One image as uint8 HxWxC: grayscale ("L") keeps one channel, all else becomes RGB."""
    try:
        with Image.open(path) as image:
            if image.mode == "L":
                return np.asarray(image)[..., None]
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except UnidentifiedImageError as e:
        raise UserError(f"{path}: not an image file PIL can read") from e
    except Exception as e:  # PIL raises many types on damaged files (struct.error, ...)
        raise UserError(f"{path}: corrupt image ({type(e).__name__}: {e})") from e
