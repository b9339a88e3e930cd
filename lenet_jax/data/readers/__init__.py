"""Local dataset formats, one file each.

A module in this package is a reader when it defines `SOURCE` (the name a `DatasetSpec`'s
`source` gives: "idx", "image_folder", ...) and `read(spec, data_dir)`, which returns the
dataset's `train_*`/`test_*` arrays (uint8 NHWC images, integer labels), its class names
and where it read them, or None to let TFDS provide the dataset. Adding a local format is
adding a file here; `read_local` finds it by the spec's source.
"""

import importlib
import pkgutil
from types import ModuleType

from lenet_jax import files
from lenet_jax.data.registry import DatasetSpec


def readers() -> dict[str, ModuleType]:
    """{source: reader module} of every reader in this package (its `__path__`)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "SOURCE") and hasattr(module, "read"):
            found[module.SOURCE] = module
    return found


def read_local(spec: DatasetSpec, data_dir: str):
    """(arrays, class names, where) from `spec`'s local files, or None for TFDS to try."""
    if data_dir:
        files.check_readable(data_dir, "config.data_dir")
    reader = readers().get(spec.source)
    return reader.read(spec, data_dir) if reader is not None else None
