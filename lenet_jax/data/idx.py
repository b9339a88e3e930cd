"""Reads MNIST-style IDX files (raw or gzipped) and checks them against known SHA-256s."""

import gzip
import hashlib
import io
import math
import os
import zlib

import numpy as np

from lenet_jax.errors import UserError

_IDX_DTYPE_UBYTE = 0x08
_MAX_DIMENSIONS = 8
# No dataset file shipped as IDX comes near this; a .gz that claims more is refused before
# it is decompressed into memory.
MAX_DECOMPRESSED_BYTES = 1 << 30


def read_verified(path: str, *, raw_sha256: str | None, gz_sha256: str | None) -> bytes:
    """Returns the un-gzipped bytes of `path`, raising if they are not the known originals.

    Re-compressed copies (Debian's `.gz` files have other headers) are accepted when the
    un-gzipped bytes match `raw_sha256`; a `.gz` is also accepted when it is byte-identical
    to the upstream archive (`gz_sha256`, as registered by TFDS).
    """
    with open(path, "rb") as f:
        stored = f.read()
    is_gzip = stored[:2] == b"\x1f\x8b"
    if is_gzip and gz_sha256 and hashlib.sha256(stored).hexdigest() == gz_sha256:
        return gzip.decompress(stored)
    try:
        data = _gunzip(stored) if is_gzip else stored
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise UserError(f"{path}: not a readable gzip file ({e})") from None
    if len(data) > MAX_DECOMPRESSED_BYTES:
        raise UserError(f"{path}: decompresses to over {MAX_DECOMPRESSED_BYTES:,} bytes")
    if raw_sha256 and hashlib.sha256(data).hexdigest() != raw_sha256:
        raise UserError(
            f"{path}: SHA-256 of its contents does not match the original dataset file; "
            "re-install it (apt-get install --reinstall dataset-fashion-mnist) or fix data_dir"
        )
    return data


def _gunzip(stored: bytes) -> bytes:
    """The decompressed bytes, reading at most one byte past MAX_DECOMPRESSED_BYTES."""
    with gzip.GzipFile(fileobj=io.BytesIO(stored)) as f:
        return f.read(MAX_DECOMPRESSED_BYTES + 1)


def parse(data: bytes, path: str) -> np.ndarray:
    """Parses IDX bytes (unsigned-byte payload) into a uint8 array of the header's shape.

    The header's shape is checked against the bytes present before anything is allocated,
    so a cut or forged header is one UserError, never a huge allocation.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_DTYPE_UBYTE:
        raise UserError(f"{path}: not an unsigned-byte IDX file (wrong magic number)")
    ndim = data[3]
    if not 1 <= ndim <= _MAX_DIMENSIONS:
        raise UserError(f"{path}: IDX header declares {ndim} dimensions (1 to 8 expected)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path}: IDX header is cut short ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if math.prod(max(d, 1) for d in shape) >= 2**62:  # an empty array of absurd dimensions
        raise UserError(f"{path}: IDX header declares absurd dimensions {shape}")
    if len(data) != header + math.prod(shape):
        raise UserError(
            f"{path}: IDX header says shape {shape} ({header + math.prod(shape):,} bytes) "
            f"but the file size differs ({len(data):,} bytes)"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def find(directory: str, stem: str) -> str | None:
    """The path of `stem` or `stem.gz` in `directory`, whichever exists."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def upstream_gz(path: str, stem: str, mtime: int) -> bytes:
    """The upstream `.gz` of a copy that carries the same compressed payload under another
    gzip header (Debian's): the payload with the upstream header (mtime, file name)."""
    with open(path, "rb") as f:
        stored = f.read()
    if len(stored) < 18 or stored[:3] != b"\x1f\x8b\x08" or stored[3] != 0:
        raise UserError(f"{path}: not a gzip file with a plain 10-byte header")
    header = b"\x1f\x8b\x08\x08" + mtime.to_bytes(4, "little") + b"\x00\x03" + stem.encode()
    return header + b"\x00" + stored[10:]
