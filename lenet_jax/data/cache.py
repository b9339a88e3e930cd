"""A small on-disk cache of decoded arrays, so a slow first load is not paid twice.

Entries are written under a temporary name and renamed, and verified when read (the zip
format's per-member CRC): a damaged entry (a full disk, a crash, a bad sector) is warned
about, removed and built again, never a crash of every later run.
"""

import os
import sys
import zipfile
from collections.abc import Callable

import numpy as np

from lenet_jax import files


def cache_dir() -> str:
    """`$LENET_JAX_CACHE`, else `$XDG_CACHE_HOME/lenet_jax`, else `~/.cache/lenet_jax`."""
    if os.environ.get("LENET_JAX_CACHE"):
        return os.environ["LENET_JAX_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lenet_jax")


def load_or_build(key: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Returns the arrays cached under `key`, building and storing them on a miss.

    The file is written under a temporary name and renamed, so an interrupted write
    never leaves a truncated cache entry behind.
    """
    path = os.path.join(cache_dir(), key + ".npz")
    if os.path.isfile(path):
        try:
            with np.load(path) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
            print(
                f"warning: {path}: damaged cache entry ({type(e).__name__}: {e}); removed, "
                "building it again",
                file=sys.stderr,
                flush=True,
            )
            os.remove(path)
    arrays = build()
    with files.atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return arrays
