"""Extracts the CIFAR-10 JPEG archive into the cache and prints the folder on the last line.

    python scripts/prepare_cifar10.py                      # -> <cache>/cifar10-jpeg
    python -m lenet_jax.train ... --config.data_dir=$(python scripts/prepare_cifar10.py)

Extraction goes to a temporary sibling folder that is renamed when complete, so an
interrupted run is never mistaken for a finished one; a finished folder is reused.
"""

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from lenet_jax.data import cache
from lenet_jax.errors import UserError

DEFAULT_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def prepare(archive: str, destination: str) -> str:
    """Returns `destination`, extracting `archive` there first unless already done."""
    if _complete(destination):
        print(f"already extracted: {destination}", file=sys.stderr)
        return destination
    if os.path.exists(destination):
        raise UserError(f"{destination} exists but has no train/ and test/; remove it first")
    if not os.path.isfile(archive):
        raise UserError(f"no archive at {archive}; pass --archive PATH")
    parent = os.path.dirname(os.path.abspath(destination))
    os.makedirs(parent, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=f".{os.path.basename(destination)}.partial.", dir=parent)
    os.chmod(partial, 0o755)  # mkdtemp makes it private; the result should not be
    try:
        print(f"extracting {archive} -> {destination}", file=sys.stderr)
        _extract(archive, partial)
        try:
            os.rename(partial, destination)
        except OSError:
            if not _complete(destination):
                raise
            # Another run finished first: keep its copy.
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return destination


def _complete(destination: str) -> bool:
    return all(os.path.isdir(os.path.join(destination, split)) for split in ("train", "test"))


def _extract(archive: str, directory: str) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(directory, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UserError(f"{archive}: cannot extract ({type(e).__name__}: {e})") from e


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=str(DEFAULT_ARCHIVE), help="cifar10-jpeg.tar.gz")
    parser.add_argument(
        "--dest",
        default=os.path.join(cache.cache_dir(), "cifar10-jpeg"),
        help="folder to extract into (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        print(prepare(args.archive, args.dest))
    except UserError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
