"""Plots: valid PNGs of plausible size, edge inputs, and a whole run's set from a workdir."""

import json

import numpy as np
import pytest
from PIL import Image

from lenet_jax import data as data_lib
from lenet_jax.report import plots
from lenet_jax.training.results import Snapshot
from lenet_jax.training.run import build_run

FASHION = data_lib.DATASETS["fashion_mnist"].class_names


def assert_png(path, *, min_size=(300, 200)) -> tuple[int, int]:
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.width >= min_size[0] and image.height >= min_size[1]
        assert image.width <= 4000 and image.height <= 4000
        return image.size


def rows(num_epochs: int) -> list[dict]:
    out = []
    for epoch in range(1, num_epochs + 1):
        out.append(
            {
                "step": 10 * epoch,
                "epoch": epoch,
                "split": "train",
                "loss": 1 / epoch,
                "accuracy": 1 - 0.5 / epoch,
                "learning_rate": 1e-3,
            }
        )
        out.append(
            {
                "step": 10 * epoch,
                "epoch": epoch,
                "split": "test",
                "loss": 1.1 / epoch,
                "accuracy": 1 - 0.6 / epoch,
            }
        )
    return out


@pytest.mark.parametrize("num_epochs", [0, 1, 12])
def test_curves(tmp_path, num_epochs):
    path = plots.plot_curves(rows(num_epochs), str(tmp_path / "sub" / "curves.png"))
    assert path.endswith("curves.png")
    assert_png(path)


def test_confusion_with_fashion_names(tmp_path):
    confusion = np.random.default_rng(0).integers(0, 50, (10, 10)) + 900 * np.eye(10, dtype=int)
    width, height = assert_png(plots.plot_confusion(confusion, FASHION, str(tmp_path / "c.png")))
    assert width >= 600 and height >= 600  # big enough for ten labelled rows


def test_confusion_rejects_a_mismatched_matrix(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(3, 3\) for 10 class names"):
        plots.plot_confusion(np.eye(3), FASHION, str(tmp_path / "c.png"))


@pytest.mark.parametrize("shape", [(40, 28, 28, 1), (40, 32, 32, 3)])
def test_misclassified_grayscale_and_rgb(tmp_path, shape):
    images = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    labels = np.arange(40) % 10
    predictions = np.where(np.arange(40) % 3 == 0, labels, (labels + 1) % 10)
    one = plots.plot_misclassified(
        images, labels, predictions, FASHION, str(tmp_path / "a.png"), max_images=4
    )
    many = plots.plot_misclassified(images, labels, predictions, FASHION, str(tmp_path / "b.png"))
    assert assert_png(one)[1] < assert_png(many)[1]  # 1 row of 4 vs 4 rows of 8 (26 wrong)


def test_nothing_misclassified_says_so(tmp_path):
    images = np.zeros((5, 28, 28, 1), np.uint8)
    labels = np.arange(5)
    path = plots.plot_misclassified(images, labels, labels, FASHION, str(tmp_path / "m.png"))
    assert_png(path, min_size=(200, 100))
    path = plots.plot_misclassified(
        images[:0], labels[:0], labels[:0], FASHION, str(tmp_path / "empty.png")
    )
    assert_png(path, min_size=(200, 100))


def test_write_run_plots_from_a_workdir(tmp_path, tiny_mnist_dir, tiny_config):
    dataset = data_lib.load_dataset("mnist", str(tiny_mnist_dir)).take(0, 64)
    built = build_run(tiny_config, dataset=dataset)
    run = Snapshot(built, built.init_state(), 7)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(2)))
    paths = plots.write_run_plots(str(tmp_path), run)
    assert sorted(paths) == ["confusion", "curves", "misclassified"]
    for name, path in paths.items():
        assert path == str(tmp_path / "plots" / f"{name}.png")
        assert_png(path, min_size=(200, 100))


def test_write_run_plots_without_metrics_still_writes_all(tmp_path, tiny_mnist_dir, tiny_config):
    dataset = data_lib.load_dataset("mnist", str(tiny_mnist_dir)).take(0, 8)
    tiny_config.model.name = "lenet_d2l"
    built = build_run(tiny_config, dataset=dataset)
    paths = plots.write_run_plots(str(tmp_path), Snapshot(built, built.init_state(), 0))
    assert not (tmp_path / "metrics.jsonl").exists()
    assert sorted(paths) == ["confusion", "curves", "misclassified"]
    for name, path in paths.items():
        assert path == str(tmp_path / "plots" / f"{name}.png")
        assert_png(path, min_size=(200, 100))
