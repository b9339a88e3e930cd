"""TFDS as every dataset's fallback: prepared splits read through `tfds.data_source`.

TensorFlow Datasets is imported only here and only when a dataset has no local files, so
a run on local data never imports it.
"""

import socket

import numpy as np


class TfdsUnavailable(Exception):
    """TFDS has no prepared copy and cannot download one here."""


def load_tfds(name: str) -> dict[str, np.ndarray]:
    """Both splits of TFDS dataset `name` as {"train_images", "train_labels", ...} arrays."""
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
