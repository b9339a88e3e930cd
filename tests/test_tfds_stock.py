"""Optional, slow: TFDS's stock fashion_mnist builder, prepared offline from Debian's files.

Runs only where TensorFlow is installed (`pip install -e '.[tf]'`): stock builders need it
to prepare. `scripts/prepare_tfds.py` rebuilds the upstream `.gz` files from Debian's, and
the builder verifies them against the checksums TFDS registers.
"""

import dataclasses
import hashlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import FASHION_DIR, REPO, requires_fashion

from lenet_jax import data

pytest.importorskip("tensorflow")


def pairs(images, labels) -> list[str]:
    return sorted(
        hashlib.sha1(image.tobytes() + bytes([label])).hexdigest()
        for image, label in zip(images, labels)
    )


@requires_fashion
def test_stock_builder_prepares_fashion_mnist_from_debian_files(tmp_path, monkeypatch):
    prepared = subprocess.run(
        [sys.executable, "scripts/prepare_tfds.py", "fashion_mnist", f"--data_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert prepared.stdout.strip().splitlines()[-1].endswith("fashion_mnist/3.0.1")
    local = data.load_dataset("fashion_mnist", str(FASHION_DIR))
    spec = data.DATASETS["fashion_mnist"]
    monkeypatch.setitem(
        data.DATASETS, "fashion_mnist", dataclasses.replace(spec, default_dir=str(tmp_path / "x"))
    )
    from_tfds = data.load_dataset("fashion_mnist", tfds_data_dir=str(tmp_path))
    assert from_tfds.source == "tfds"
    for split in ("train", "test"):
        assert pairs(*from_tfds.split(split)) == pairs(*local.split(split))
    assert np.bincount(from_tfds.test_labels).tolist() == [1000] * 10
