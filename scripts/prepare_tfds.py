"""Prepares a TFDS dataset offline, so `tfds.load` / `tfds.data_source` find it here too.

    python scripts/prepare_tfds.py fashion_mnist [--data_dir DIR]
    python scripts/prepare_tfds.py cifar10 --image_folder $(python scripts/prepare_cifar10.py)
    python scripts/prepare_tfds.py kmnist --image_folder DIR   # any name, <DIR>/<split>/<class>/

fashion_mnist from Debian's `dataset-fashion-mnist`: the upstream `.gz` files are rebuilt
from Debian's (same payload, upstream header), placed in TFDS's manual folder and, where
TensorFlow is installed, prepared by TFDS's stock builder with its registered checksums
verified. Without TensorFlow, and for `--image_folder`, the examples are written as
`array_record` under the registered name, version and features (`data.tfds_offline`).
The prepared folder is printed on the last line.
"""

import argparse
import hashlib
import os
import sys

from lenet_jax.data import DATASETS, idx, image_folder, tfds_offline, tfds_preparation, tfds_source
from lenet_jax.data.loading import load_dataset
from lenet_jax.errors import UserError


def stock_fashion_mnist(data_dir: str) -> str:
    """Rebuilds the upstream files into TFDS's manual folder and runs the stock builder."""
    import tensorflow_datasets as tfds

    spec = DATASETS["fashion_mnist"]
    manual = os.path.join(data_dir, "downloads", "manual")
    os.makedirs(manual, exist_ok=True)
    for pair in spec.idx_files.values():
        for file in pair:
            path = idx.find(spec.default_dir, file.stem)
            if path is None:
                raise UserError(f"{spec.default_dir}: no {file.stem}; {spec.install_hint}")
            data = idx.upstream_gz(path, file.stem, file.gz_mtime)
            if hashlib.sha256(data).hexdigest() != file.gz_sha256:
                raise UserError(f"{path}: its payload is not the upstream {file.stem}.gz")
            with open(os.path.join(manual, file.stem + ".gz"), "wb") as f:
                f.write(data)
    builder = tfds.builder("fashion_mnist", data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    return os.fspath(builder.data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a registered TFDS name, e.g. fashion_mnist, kmnist")
    parser.add_argument("--data_dir", default="", help="TFDS data dir ('' = TFDS's default)")
    parser.add_argument("--image_folder", default="", help="<dir>/<split>/<class>/<image>")
    args = parser.parse_args()
    try:
        data_dir = args.data_dir or os.fspath(
            tfds_source.open_dataset(args.name).builder.data_dir_root
        )
        stock = args.name == "fashion_mnist" and not args.image_folder
        if stock and tfds_preparation.has_tensorflow():
            print(stock_fashion_mnist(data_dir))
            return
        if args.image_folder:
            arrays, _ = image_folder.load_image_folder(args.image_folder)
        else:
            dataset = load_dataset(args.name, max_in_memory_mb=float("inf"))
            if dataset.source == "tfds":
                raise UserError(f"{args.name}: no local files to prepare from; --image_folder")
            arrays = {
                "train_images": dataset.train_images,
                "train_labels": dataset.train_labels,
                "test_images": dataset.test_images,
                "test_labels": dataset.test_labels,
            }
        splits = {s: (arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in ("train", "test")}
        print(tfds_offline.write_tfds_dataset(args.name, splits, data_dir))
    except UserError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
