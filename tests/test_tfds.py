"""The TFDS branch for real: tiny datasets written by a real `GeneratorBasedBuilder` into a
temporary TFDS data dir (no TensorFlow, no network), read back by TFDS's registered builders
through `tfds.data_source`; any TFDS name; split slicing; streaming; the bugs found on it."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from cli_checks import train_checks
from conftest import sigterm_as_epoch_starts, tiny_config_for, tiny_train_args

from lenet_jax import data
from lenet_jax.data import cache, streaming, tfds_offline, tfds_preparation, tfds_source
from lenet_jax.errors import UserError
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.train import train_and_evaluate
from lenet_jax.training import batches
from lenet_jax.training.loop import Preempted
from lenet_jax.training.parallel import Strategy

SHAPES = {"fashion_mnist": (28, 28, 1), "mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
KMNIST_NAMES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


def learnable(n: int, shape: tuple, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images where each class lights up its own band of rows, and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, *shape)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 255
    return images, labels


def write(name: str, data_dir, *, num_train=256, num_test=128, seed=0) -> dict:
    shape = SHAPES.get(name, (28, 28, 1))
    splits = {
        "train": learnable(num_train, shape, seed),
        "test": learnable(num_test, shape, seed + 1),
    }
    tfds_offline.write_tfds_dataset(name, splits, str(data_dir))
    return splits


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS data dir holding fashion_mnist, mnist, cifar10 and kmnist (no spec here)."""
    root = tmp_path_factory.mktemp("tfds")
    written = {name: write(name, root) for name in ("fashion_mnist", "mnist", "cifar10", "kmnist")}
    return root, written


def by_content(images, labels) -> dict:
    return {image.tobytes(): int(label) for image, label in zip(images, labels)}


@pytest.fixture
def no_local_files(monkeypatch, tmp_path):
    """The registered datasets without their local files, so TFDS is what provides them."""
    for name, spec in data.DATASETS.items():
        monkeypatch.setitem(
            data.DATASETS, name, dataclasses.replace(spec, default_dir=str(tmp_path / "absent"))
        )


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10", "kmnist"])
def test_tfds_branch_reads_what_the_builder_wrote(tfds_dir, no_local_files, name):
    root, written = tfds_dir
    ds = data.load_dataset(name, tfds_data_dir=str(root))
    assert ds.source == "tfds" and ds.train_images.dtype == np.uint8
    assert ds.train_images.shape == (256, *SHAPES.get(name, (28, 28, 1)))
    for split in ("train", "test"):
        images, labels = ds.split(split)
        assert by_content(images, labels) == by_content(*written[name][split])
    expected = data.DATASETS[name].class_names if name in data.DATASETS else KMNIST_NAMES
    assert ds.class_names == expected


def test_class_names_are_stored_with_the_cached_arrays(tfds_dir, no_local_files):
    """Bug a: a cache hit gives the dataset's names, not digits."""
    root, _ = tfds_dir
    first = data.load_dataset("kmnist", tfds_data_dir=str(root))
    entries = [f for f in os.listdir(cache.cache_dir()) if f.startswith("tfds-kmnist")]
    assert len(entries) == 1
    with np.load(os.path.join(cache.cache_dir(), entries[0])) as stored:
        assert tuple(stored["class_names"]) == KMNIST_NAMES
        assert stored["mean"].shape == (1,) and 0 < stored["mean"][0] < 1
    again = data.load_dataset("kmnist", tfds_data_dir=str(root))
    assert again.class_names == first.class_names == KMNIST_NAMES
    assert again.mean == first.mean and again.std == first.std


def test_mean_and_std_are_computed_on_the_train_split(tfds_dir):
    root, written = tfds_dir
    ds = data.load_dataset("kmnist", tfds_data_dir=str(root))
    pixels = written["kmnist"]["train"][0].astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean, [pixels.mean()], rtol=1e-9)
    np.testing.assert_allclose(ds.std, [pixels.std()], rtol=1e-9)


def test_cache_key_follows_the_data_dir(tmp_path):
    """Bug e: two data dirs with different copies of one dataset are two cache entries."""
    write("kmnist", tmp_path / "a", seed=0)
    write("kmnist", tmp_path / "b", seed=7)
    a = data.load_dataset("kmnist", tfds_data_dir=str(tmp_path / "a"))
    b = data.load_dataset("kmnist", tfds_data_dir=str(tmp_path / "b"))
    assert by_content(a.train_images, a.train_labels) != by_content(b.train_images, b.train_labels)


def test_tfrecord_copy_is_reported_as_such(tmp_path):
    """Bug b: a copy prepared as tfrecord is named as the problem, not "not prepared"."""
    folder = tfds_offline.write_tfds_dataset(
        "kmnist",
        {"train": learnable(8, (28, 28, 1), 0), "test": learnable(8, (28, 28, 1), 1)},
        str(tmp_path),
    )
    info_file = os.path.join(folder, "dataset_info.json")
    info = json.load(open(info_file))
    info["fileFormat"] = "tfrecord"
    json.dump(info, open(info_file, "w"))
    with pytest.raises(
        UserError,
        match=r"kmnist: TFDS cannot provide it \(prepared in .* as tfrecord.*array_record",
    ):
        data.load_dataset("kmnist", tfds_data_dir=str(tmp_path))


def test_filled_download_cache_needs_no_network(tmp_path, monkeypatch):
    """Bug c: the files TFDS would download, already in its download cache, are enough;
    offline without them, the message names the hosts this dataset downloads from."""
    from tensorflow_datasets.core.download import resource

    def unresolvable(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(tfds_preparation.socket, "getaddrinfo", unresolvable)
    for variable in ("https_proxy", "http_proxy", "all_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    builder = tfds_source.open_dataset("fashion_mnist", str(tmp_path)).builder
    blocker = tfds_preparation.preparation_blocker(builder)
    assert "fashion-mnist.s3-website.eu-central-1.amazonaws.com" in blocker
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for url, info in builder.url_infos.items():
        (downloads / resource.get_dl_fname(url, info.checksum)).write_bytes(b"cached")
    assert not tfds_preparation.needs_download(builder)
    assert "cannot be reached" not in (tfds_preparation.preparation_blocker(builder) or "")
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    assert tfds_preparation._online(["fashion-mnist.s3-website.eu-central-1.amazonaws.com"])


def test_tfds_data_dir_is_passed_not_read_from_home(tmp_path):
    """Bug d: a prepared copy under ~/tensorflow_datasets is not what a run with another
    `tfds_data_dir` reads (TFDS reads TFDS_DATA_DIR and HOME once, at import)."""
    home = tmp_path / "home"
    write("kmnist", home / "tensorflow_datasets")
    env = {k: v for k, v in os.environ.items() if k != "TFDS_DATA_DIR"}
    env["HOME"] = str(home)
    code = (
        "from lenet_jax.data import load_dataset; import sys\n"
        "ds = load_dataset('kmnist', tfds_data_dir=sys.argv[1]); print(len(ds.train_labels))"
    )
    elsewhere = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "empty")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert elsewhere.returncode != 0 and "not prepared in" in elsewhere.stderr
    at_home = subprocess.run(
        [sys.executable, "-c", code, ""], env=env, capture_output=True, text=True, timeout=120
    )
    assert at_home.stdout.strip() == "256", at_home.stderr


def test_splits_can_be_sliced(tfds_dir, tiny_mnist_dir):
    root, written = tfds_dir
    ds = data.load_dataset(
        "kmnist", tfds_data_dir=str(root), train_split="train[:75%]", eval_split="train[75%:]"
    )
    assert (len(ds.train_labels), len(ds.test_labels)) == (192, 64)
    union = by_content(ds.train_images, ds.train_labels) | by_content(
        ds.test_images, ds.test_labels
    )
    assert union == by_content(*written["kmnist"]["train"])
    local = data.load_dataset("mnist", str(tiny_mnist_dir), eval_split="train[-100:]")
    whole = data.load_dataset("mnist", str(tiny_mnist_dir))
    np.testing.assert_array_equal(local.test_images, whole.train_images[-100:])
    assert len(local.train_labels) == 512


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"eval_split": "validation"},
            r"kmnist: cannot read split 'validation'.*\['train', 'test'\]",
        ),
        ({"train_split": "train[:5"}, r"config.train_split='train\[:5': expected a split name"),
        (
            {"name": "fashion_mnst"},
            r"unknown dataset 'fashion_mnst'.*closest TFDS names: \['fashion_mnist'",
        ),
        (
            {"name": "imdb_reviews"},
            r"imdb_reviews: not an image-classification dataset.*text: Text",
        ),
        ({"name": "celeb_a"}, r"celeb_a: no class label to train on"),
        ({"name": "tf_flowers"}, r"tf_flowers: its images have shape \(None, None, 3\)"),
    ],
)
def test_bad_datasets_and_splits_are_one_line(tfds_dir, kwargs, message):
    root, _ = tfds_dir
    name = kwargs.pop("name", "kmnist")
    with pytest.raises(UserError, match=message) as error:
        data.load_dataset(name, tfds_data_dir=str(root), **kwargs)
    assert "\n" not in str(error.value)


def test_local_split_must_exist(tiny_mnist_dir):
    with pytest.raises(UserError, match=r"config.eval_split='validation': mnist from local files"):
        data.load_dataset("mnist", str(tiny_mnist_dir), eval_split="validation")


def test_dataset_without_a_spec_trains_and_evaluate_names_its_classes(tfds_dir, tmp_path, capsys):
    """The train command's flags and run, in this process (test_cli runs one whole process)."""
    root, _ = tfds_dir
    workdir = tmp_path / "run"
    overrides = [
        "--config.dataset=kmnist",
        f"--config.tfds_data_dir={root}",
        "--config.num_epochs=1",
    ]
    code, stderr = train_checks(tiny_train_args(workdir, "", *overrides), train=True)
    assert code == 0, stderr[-2000:]
    loaded = "loaded kmnist from tfds: 256 train, 128 test examples"
    assert loaded in capsys.readouterr().out + stderr
    report = evaluate_workdir(str(workdir), "latest", draw_plots=False)
    assert tuple(report["class_names"]) == KMNIST_NAMES
    assert report["accuracy"] > 0.5


def streaming_config(root, workdir_epochs=2, **overrides):
    config = tiny_config_for("", num_epochs=workdir_epochs)
    config.dataset = "kmnist"
    config.data_dir = ""
    config.tfds_data_dir = str(root)
    for key, value in overrides.items():
        config[key] = value
    return config


def test_streamed_training_equals_in_memory_and_resumes_bit_identically(
    tfds_dir, tmp_path, monkeypatch
):
    root, _ = tfds_dir
    held = train_and_evaluate(streaming_config(root, 3), str(tmp_path / "held"))
    tiny = 0.01  # MB: both splits are streamed
    streamed = train_and_evaluate(
        streaming_config(root, 3, max_in_memory_mb=tiny), str(tmp_path / "streamed")
    )
    assert streaming.is_streamed(streamed.run.dataset.train_images)
    assert streaming.is_streamed(streamed.run.dataset.test_images)

    resumed_dir = str(tmp_path / "resumed")
    with (
        sigterm_as_epoch_starts(monkeypatch, 1),
        pytest.raises(Preempted, match="stopped at step 5"),
    ):
        train_and_evaluate(streaming_config(root, 3, max_in_memory_mb=tiny), resumed_dir)
    resumed = train_and_evaluate(streaming_config(root, 3, max_in_memory_mb=tiny), resumed_dir)
    assert resumed.resumed_from == 5 and resumed.steps_trained == resumed.step - 5
    for other in (streamed, resumed):
        for a, b in zip(jax.tree.leaves(held.state.params), jax.tree.leaves(other.state.params)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert other.test == held.test


def test_streamed_split_refuses_the_scanned_epoch(tfds_dir, tmp_path):
    root, _ = tfds_dir
    config = streaming_config(root, max_in_memory_mb=0.01, epoch_loop="scan")
    with pytest.raises(UserError, match=r"epoch_loop='scan'.*streamed"):
        train_and_evaluate(config, str(tmp_path / "run"))


def test_streamed_reads_hand_errors_to_the_step_and_stop_early():
    images = streaming.StreamedImages(_Failing(10), "image", (2, 2, 1))
    labels = np.zeros(10, np.int32)
    produced = batches.epoch_batches(Strategy(), images, labels, np.arange(10), 2, range(5))
    with pytest.raises(OSError, match="record 6 is damaged"):
        list(produced)
    early = batches.epoch_batches(Strategy(), images, labels, np.arange(10), 2, range(2))
    assert [np.asarray(x).shape for x, _ in early] == [(2, 2, 2, 1)] * 2


class _Failing:
    """A random-access source whose record 6 cannot be read (a damaged file)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitems__(self, rows):
        if 6 in rows:
            raise OSError("record 6 is damaged")
        return [{"image": np.full((2, 2, 1), r, np.uint8)} for r in rows]


def test_summary_takes_a_tfds_datasets_shape_from_its_builder(tmp_path):
    from lenet_jax import summary
    from lenet_jax.config import base_config

    config = base_config()
    config.dataset = "svhn_cropped"  # nothing prepared: the builder's info is enough
    config.tfds_data_dir = str(tmp_path)
    assert summary.image_shape(config) == (32, 32, 3)
