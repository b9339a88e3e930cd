"""Property-based fuzzing of every reader of files a user hands the toolkit: the IDX reader,
the image-folder decoder and checkpoint restore. Whatever the bytes (cut headers, absurd
declared sizes, zero-byte files, wrong magic numbers, random garbage), the result is data
or one UserError: never another exception, a hang or a huge allocation."""

import gzip
import pathlib
import shutil
import tempfile
import zlib

import jax
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from lenet_jax import prng
from lenet_jax.data import idx, image_folder
from lenet_jax.errors import UserError
from lenet_jax.models import get_model
from lenet_jax.training import checkpointing
from lenet_jax.training.state import create_train_state

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def idx_header(dims: list[int], dtype: int = 0x08) -> bytes:
    return bytes([0, 0, dtype, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


idx_like = st.one_of(
    st.binary(max_size=64),  # garbage, zero bytes, cut headers
    st.builds(  # plausible headers: any declared size, any payload length
        lambda dims, payload, dtype: idx_header(dims, dtype) + payload,
        st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=9),
        st.binary(max_size=256),
        st.sampled_from([0x08, 0x08, 0x09, 0x0D]),
    ),
)


@FUZZ
@given(data=idx_like, gz=st.booleans())
@example(data=idx_header([0, 0, 512, 512 * 2**16, 32, 0]), gz=False)  # found: empty, absurd
def test_idx_reader_returns_an_array_or_one_user_error(tmp_path, data, gz):
    path = pathlib.Path(tempfile.mkdtemp(dir=tmp_path)) / ("f.gz" if gz else "f")
    path.write_bytes(gzip.compress(data) if gz else data)
    try:
        array = idx.parse(idx.read_verified(str(path), raw_sha256=None, gz_sha256=None), str(path))
    except UserError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert array.dtype == np.uint8 and array.size == len(data) - 4 - 4 * array.ndim


def _is_whole_gzip(blob: bytes) -> bool:
    try:
        gzip.decompress(blob)
    except (OSError, EOFError, ValueError, zlib.error):
        return False
    return True


@FUZZ
@given(data=st.binary(max_size=300))
@example(data=b"\x08\x00\x00\x00\x00\x00\x00\x03garbage!!")  # zlib.error: invalid block type
def test_a_gz_that_is_not_gzip_inside_is_one_user_error(tmp_path, data):
    blob = b"\x1f\x8b" + data  # the magic, then anything
    assume(not _is_whole_gzip(blob))  # a valid empty member is possible, if unlikely
    path = tmp_path / "f.gz"
    path.write_bytes(blob)
    with pytest.raises(UserError, match=r"f\.gz: not a readable gzip file") as raised:
        idx.read_verified(str(path), raw_sha256=None, gz_sha256=None)
    assert "\n" not in str(raised.value)


def test_eight_dimensions_are_read_and_nine_refused(tmp_path):
    path = tmp_path / "f"
    array = idx.parse(idx_header([1] * 8) + b"\x07", str(path))
    assert array.shape == (1,) * 8 and array.item() == 7
    with pytest.raises(UserError, match=r"declares 9 dimensions \(1 to 8 expected\)"):
        idx.parse(idx_header([1] * 9) + b"\x07", str(path))


def test_an_absurd_declared_size_allocates_nothing(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(idx_header([2**32 - 1] * 4) + b"\0" * 16)
    with pytest.raises(UserError, match="IDX header declares absurd dimensions"):
        idx.parse(path.read_bytes(), str(path))
    path.write_bytes(idx_header([2**30, 2**30]) + b"\0" * 16)  # 1 EiB declared, 16 B there
    with pytest.raises(UserError, match="IDX header says shape"):
        idx.parse(path.read_bytes(), str(path))


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=512), st.builds(lambda tail: _png_head() + tail, st.binary(max_size=256))
    )
)
def test_image_decoder_returns_an_image_or_one_user_error(tmp_path, data):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    try:
        image = image_folder._decode(str(path))
    except UserError as e:
        assert "x.png" in str(e)
        return
    assert image.dtype == np.uint8 and image.ndim == 3


def _png_head() -> bytes:
    """The first bytes of a real 4x4 PNG: a valid start, then garbage."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out, format="PNG")
    return out.getvalue()[:40]


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    """One real orbax checkpoint, and the abstract state that restores it."""
    directory = tmp_path_factory.mktemp("ckpt")
    state = create_train_state(
        get_model("lenet_modern"), optax.sgd(0.1), prng.key(0), (28, 28, 1)
    )
    with checkpointing.Checkpoints(str(directory), keep=2) as ckpts:
        ckpts.save(1, state, {"totals": {}, "history": []})
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state
    )
    return directory, abstract


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pick=st.integers(0, 10**6), keep=st.floats(0, 1), garbage=st.binary(max_size=64))
def test_a_damaged_checkpoint_restores_or_is_one_user_error(
    saved_checkpoint, tmp_path, pick, keep, garbage
):
    source, abstract = saved_checkpoint
    directory = pathlib.Path(tempfile.mkdtemp(dir=tmp_path)) / "checkpoints"
    shutil.copytree(source, directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    victim = files[pick % len(files)]
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * keep)] + garbage)  # cut, then maybe garbage
    try:
        with checkpointing.Checkpoints(str(directory), keep=2) as ckpts:
            restored = ckpts.restore_latest_good(abstract)
    except UserError as e:
        assert str(directory) in str(e)
        return
    assert restored is not None and restored[2] == 1  # a checkpoint exists: restored, or an error
    assert jax.tree.structure(restored[0]) == jax.tree.structure(abstract)
