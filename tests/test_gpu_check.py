"""scripts/gpu_check.sh --dry-run: every step of the GPU check runs, here on the CPU, and
its one JSON file holds the machine, the benchmark and each whole run."""

import json
import subprocess
import sys

from conftest import REPO, requires_fashion
from test_cifar_training import make_colour_folder


@requires_fashion
def test_the_dry_run_writes_every_figure(tmp_path):
    cifar = make_colour_folder(tmp_path / "cifar", per_class=(48, 24))
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--dry-run", "--out", str(out), "--python",
         sys.executable, "--cifar_dir", str(cifar)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["machine"]["backend"] == "cpu"
    assert report["machine"]["jax"] and report["benchmark"]["flax"]["pipelined_examples_per_s"] > 0
    runs = ["fashion", "fashion_sweep8", "cifar10", "airbench"]
    assert [r["run"] for r in report["runs"]] == runs
    for run in report["runs"]:
        assert run["epochs"] == 1 and 0 <= run["test_accuracy"] <= 1 and run["wall_s"] > 0


def test_an_unknown_argument_is_one_line(tmp_path):
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--fast"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gpu_check: unknown argument '--fast'; known: --dry-run --out --python --cifar_dir"
    )
