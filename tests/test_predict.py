"""Predict CLI: top-3 output, JSON, conversion notes, and per-file errors that spare the rest."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from cli_checks import error_lines, run_case
from conftest import REPO, TESTS
from PIL import Image

from lenet_jax import data as data_lib
from lenet_jax import predict
from lenet_jax.config import load_config_file
from lenet_jax.errors import UserError
from lenet_jax.report.inference import load_run
from lenet_jax.training import loop as trainer

RESULT = re.compile(r"^(\S+): (\S[^(]*?)  \((.+)\)$")


@pytest.fixture(scope="module")
def workdir(tiny_mnist_dir, tmp_path_factory) -> str:
    """A tiny trained run (seconds), shared by this module's tests."""
    config = load_config_file(str(TESTS / "tiny_config.py:smoke"))
    config.dataset, config.data_dir = "mnist", str(tiny_mnist_dir)
    config.num_train_examples = config.num_test_examples = 0
    config.batch_size, config.eval_batch_size, config.num_epochs = 64, 128, 2
    config.parallelism = "single"
    path = str(tmp_path_factory.mktemp("run"))
    trainer.train_and_evaluate(config, path)
    return path


@pytest.fixture(scope="module")
def test_image(tiny_mnist_dir) -> tuple[np.ndarray, int]:
    dataset = data_lib.load_dataset("mnist", str(tiny_mnist_dir))
    return dataset.test_images[0], int(dataset.test_labels[0])


def save(image: np.ndarray, path) -> str:
    Image.fromarray(image).save(path)
    return str(path)


def parse(line: str) -> tuple[str, str, list[tuple[str, float]]]:
    path, name, ranked = RESULT.match(line).groups()
    pairs = [item.rsplit(" ", 1) for item in ranked.split(", ")]
    return path, name, [(n, float(p)) for n, p in pairs]


def test_load_image_keeps_a_dataset_shaped_image(tmp_path, test_image):
    path = save(test_image[0][..., 0], tmp_path / "a.png")
    image, notes = predict.load_image(path, (28, 28, 1))
    assert notes == [] and image.dtype == np.uint8
    np.testing.assert_array_equal(image, test_image[0])


def test_load_image_converts_and_resizes(tmp_path):
    rgb = np.zeros((80, 100, 3), np.uint8)
    rgb[20:60, 30:70] = (255, 255, 255)
    path = save(rgb, tmp_path / "rgb.png")
    image, notes = predict.load_image(path, (28, 28, 1))
    assert image.shape == (28, 28, 1)
    assert notes == ["converted RGB -> grayscale", "resized 100x80 -> 28x28"]
    assert image[14, 14, 0] > 200 and image[0, 0, 0] == 0
    image, notes = predict.load_image(save(rgb[..., 0], tmp_path / "g.png"), (32, 32, 3))
    assert image.shape == (32, 32, 3) and notes == ["converted L -> RGB", "resized 100x80 -> 32x32"]


@pytest.mark.parametrize(
    "content, message", [(None, "no such file"), (b"hello", "not a readable image")]
)
def test_load_image_bad_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=f"bad.png: {message}"):
        predict.load_image(str(path), (28, 28, 1))


def test_prints_class_and_sorted_top3(workdir, test_image, tmp_path, capsys):
    path = save(test_image[0][..., 0], tmp_path / "digit.png")
    run = load_run(workdir)
    assert predict.predict_files(run, [path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    shown_path, name, top = parse(lines[0])
    assert shown_path == path and name == top[0][0] and name in run.dataset.class_names
    probabilities = [p for _, p in top]
    assert len(top) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-3  # printed rounded to 3 decimals


def test_json_output(workdir, test_image, tmp_path, capsys):
    path = save(np.pad(test_image[0][..., 0], 6), tmp_path / "big.png")
    assert predict.predict_files(load_run(workdir), [path], as_json=True) == 0
    (line,) = capsys.readouterr().out.splitlines()
    result = json.loads(line)
    assert result["path"] == path and result["notes"] == ["resized 40x40 -> 28x28"]
    probabilities = [t["probability"] for t in result["top"]]
    assert result["class"] == result["top"][0]["class"] and len(probabilities) == 3
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1


def test_cli_missing_file_is_one_error_line_and_others_are_predicted(workdir, test_image, tmp_path):
    good = save(test_image[0][..., 0], tmp_path / "good.png")
    resized = save(
        np.asarray(Image.fromarray(test_image[0][..., 0]).resize((56, 42))),
        tmp_path / "resized.png",
    )
    missing = str(tmp_path / "missing.png")
    cmd = [
        sys.executable,
        "-m",
        "lenet_jax.predict",
        f"--workdir={workdir}",
        good,
        missing,
        resized,
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {missing}: no such file"]
    out = result.stdout.splitlines()
    assert out[1] == f"{resized}: resized 56x42 -> 28x28"
    assert [parse(line)[0] for line in (out[0], out[2])] == [good, resized]


def test_cli_all_good_exits_0_and_bad_workdir_exits_2(workdir, test_image, tmp_path):
    """All good in a real process; the bad workdir through the same checks in this one."""
    good = save(test_image[0][..., 0], tmp_path / "good.png")
    result = subprocess.run(
        [sys.executable, "-m", "lenet_jax.predict", f"--workdir={workdir}", "--checkpoint=latest",
         "--json", good],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    code, err = run_case({"command": "predict", "workdir": str(tmp_path), "images": [good]})
    (line,) = error_lines(err)
    assert code == 2 and "holds no run" in line, err
