"""scripts/benchmark.py and lenet_jax/bench: measurement on the tiny dataset, helpers exactly."""

import importlib.util
import json
import re
import sys

import numpy as np
import pytest
from conftest import REPO

from lenet_jax.bench import machine, report, step_timing, targets, torch_reference
from lenet_jax.config import load_config_file
from lenet_jax.errors import UserError
from lenet_jax.training import keys as keys_lib
from lenet_jax.training import run as run_lib


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "lenet_jax_benchmark_script", REPO / "scripts" / "benchmark.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines no absl flags: those are made under __main__
    return module


bench = _load_script()


def test_compile_counter_counts_each_new_compilation_and_no_cached_call():
    """The no-recompile check below is only as good as this counter."""
    import jax

    x = np.arange(7, dtype=np.float32)  # a shape no other test compiles for
    first, second = jax.jit(lambda v: v * 3.0 + 1.0), jax.jit(lambda v: v.sum() - 2.0)
    with machine.count_compiles() as compiles:
        first(x), second(x)
    assert compiles["compiles"] == 2
    with machine.count_compiles() as again:
        first(x), second(x), first(x + 1)
    assert again["compiles"] == 0


def test_measure_steps_times_the_compiled_step_without_recompiling(tiny_config):
    result = step_timing.measure_steps(tiny_config, steps=5, warmup=2)
    assert result["compile_s"] > 0 and result["pipelined_s"] > 0
    step = result["step_ms"]
    assert 0 < step["min"] <= step["p10"] <= step["median"] <= step["p90"] <= step["max"]
    assert step["p25"] <= step["p75"] and step["iqr"] == pytest.approx(
        step["p75"] - step["p25"], abs=1e-3
    )
    assert result["batch_prep_ms"]["median"] > 0
    assert result["pipelined_examples_per_s"] > 0 and result["blocked_examples_per_s"] > 0
    # compile step + 2 warmup + 5 blocked + 5 pipelined, across the 8-step epoch boundary.
    assert result["final_step"] == 13 and result["steps_per_epoch"] == 512 // 64
    assert result["compiles_while_timing"] == 0
    assert np.isfinite(result["final_loss"])
    table = report.format_table(_result(result))
    assert "pipelined ex/s" in table and "median" in table


def test_measure_steps_refuses_no_steps(tiny_config):
    with pytest.raises(UserError, match="--steps=0"):
        step_timing.measure_steps(tiny_config, steps=0, warmup=2)


def test_host_batches_follow_the_trainers_epoch_order(tiny_config):
    setup = run_lib.build_run(tiny_config)
    batch_at = step_timing.host_batches(setup)
    order = keys_lib.epoch_order(setup.keys["data"], 1, 512)
    images, labels = batch_at(8 + 3)  # epoch 1, batch 3
    np.testing.assert_array_equal(labels, setup.dataset.train_labels[order[192:256]])
    np.testing.assert_array_equal(images, setup.dataset.train_images[order[192:256]])


def test_summarize_ms_exact():
    summary = machine.summarize_ms([0.001, 0.002, 0.003, 0.004, 0.005])
    assert summary == {
        "median": 3.0,
        "p10": 1.4,
        "p90": 4.6,
        "p25": 2.0,
        "p75": 4.0,
        "iqr": 2.0,
        "mean": 3.0,
        "min": 1.0,
        "max": 5.0,
    }


def _rows(test_accuracies, epoch_seconds):
    rows = []
    for epoch, (accuracy, seconds) in enumerate(zip(test_accuracies, epoch_seconds), 1):
        common = {"step": 10 * epoch, "epoch": epoch}
        rows.append({**common, "split": "train", "accuracy": 0.1, "epoch_seconds": seconds})
        rows.append({**common, "split": "test", "accuracy": accuracy, "loss": 1.0})
    return rows


def test_time_to_targets_takes_the_first_epoch_reaching_each_target():
    rows = _rows([0.5, 0.75, 0.625, 0.875], [2.5, 1.25, 1.0, 0.5])
    assert targets.time_to_targets(rows, [0.5, 0.7, 0.8, 0.9]) == {
        "0.5": {"epoch": 1, "step": 10, "test_accuracy": 0.5, "train_seconds": 2.5},
        "0.7": {"epoch": 2, "step": 20, "test_accuracy": 0.75, "train_seconds": 3.75},
        "0.8": {"epoch": 4, "step": 40, "test_accuracy": 0.875, "train_seconds": 5.25},
        "0.9": None,
    }
    assert targets.time_to_targets([], [0.5]) == {"0.5": None}


def test_run_time_to_target_trains_in_a_temporary_workdir(tiny_config):
    result = targets.run_time_to_target(tiny_config, [0.01, 1.5])
    assert result["epochs"] == 2 and len(result["test_accuracy_by_epoch"]) == 2
    assert result["wall_s"] >= result["train_s"] > 0
    assert result["targets"]["0.01"]["epoch"] == 1
    assert result["targets"]["1.5"] is None
    assert result["final_test_accuracy"] == result["test_accuracy_by_epoch"][-1]


def test_torch_counterparts_and_their_differences():
    d2l = load_config_file(str(REPO / "configs" / "fashion_d2l.py"))
    assert torch_reference.torch_counterpart(d2l) == ("d2l_lenet", [])
    d2l.optimizer.momentum = 0.9
    assert torch_reference.torch_counterpart(d2l) == (
        "d2l_lenet",
        ["sgd momentum 0.9 (torch_ref: none)"],
    )
    modern = load_config_file(str(REPO / "configs" / "fashion.py"))
    assert torch_reference.torch_counterpart(modern) == (None, [])
    cifar = load_config_file(str(REPO / "configs" / "cifar10.py"))
    model, differences = torch_reference.torch_counterpart(cifar)
    assert model == "cifar_cnn"
    assert differences == [
        "cosine lr schedule (torch_ref: constant)",
        "torch_ref trains on random CIFAR-shaped images (no data_dir)",
    ]


def test_missing_torch_is_one_error_naming_the_pinned_wheel(tmp_path, monkeypatch):
    script = tmp_path / "torch_ref.py"
    script.write_text("")
    monkeypatch.setattr(torch_reference.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"pip install torch==2\.13\.0"):
        torch_reference.check_torch_ref(script)
    with pytest.raises(UserError, match="no torch reference script"):
        torch_reference.check_torch_ref(tmp_path / "absent.py")


def test_run_torch_ref_passes_the_config_and_reads_the_json_line(tmp_path):
    fake = tmp_path / "fake_ref.py"
    fake.write_text(
        "import json, os, sys\n"
        "print('noise')\n"
        "print(json.dumps({'argv': sys.argv[1:], 'cifar': os.environ.get('CIFAR_DIR'),\n"
        "                  'examples_per_s': 100.0}))\n"
    )
    cifar = load_config_file(str(REPO / "configs" / "cifar10.py"))
    cifar.data_dir = "/data/cifar"
    result = torch_reference.run_torch_ref(cifar, "cifar_cnn", steps=7, script=fake)
    assert result["argv"] == [
        "cifar_cnn",
        "--epochs=1",
        "--batch=64",
        "--lr=0.001",
        "--max-steps=7",
        "--threads=0",
    ]
    assert result["cifar"] == "/data/cifar" and result["examples_per_s"] == 100.0
    assert result["command"][0] == sys.executable


def test_run_torch_ref_failure_is_a_user_error(tmp_path):
    fake = tmp_path / "fail_ref.py"
    fake.write_text("import sys\nsys.exit('no data here')\n")
    d2l = load_config_file(str(REPO / "configs" / "fashion_d2l.py"))
    with pytest.raises(UserError, match="exit 1.*no data here"):
        torch_reference.run_torch_ref(d2l, "d2l_lenet", steps=3, script=fake)


def test_dehyphenate_only_renames_the_scripts_own_flags():
    names = ["compare_torch", "time_to_target", "steps"]
    argv = ["prog", "--compare-torch", "--no-time-to-target", "--steps", "3", "--config.a-b=1"]
    assert bench.dehyphenate(argv, names) == [
        "prog",
        "--compare_torch",
        "--notime_to_target",
        "--steps",
        "3",
        "--config.a-b=1",
    ]


def test_targets_are_parsed_and_checked():
    assert bench.parse_targets("0.85, 0.9") == [0.85, 0.9]
    for bad in ("", "x", "1.5"):
        with pytest.raises(UserError, match="--targets"):
            bench.parse_targets(bad)


def _result(flax: dict) -> dict:
    """A full result around `flax`, with a torch comparison and a time-to-target run."""
    return json.loads(
        json.dumps(
            {
                "config": "configs/fashion.py:smoke",
                "overrides": ["--config.batch_size=64"],
                "model": "lenet_modern",
                "dataset": "mnist",
                "batch_size": 64,
                "optimizer": "adam",
                "learning_rate": 0.002,
                "machine": machine.machine_facts(),
                "flax": flax,
                "torch": {
                    "model": "d2l_lenet",
                    "steps": 7,
                    "threads": 2,
                    "framework": "pytorch 2.13.0+cpu",
                    "examples_per_s": 1000.0,
                    "differences": ["sgd momentum 0.9 (torch_ref: none)"],
                },
                "ratio_flax_over_torch": 2.0,
                "time_to_target": {
                    "epochs": 2,
                    "wall_s": 3.0,
                    "train_s": 2.0,
                    "final_test_accuracy": 0.9,
                    "targets": {"0.5": None},
                },
            }
        )
    )


def _round(flax_speed: float, ratio: float | None) -> dict:
    return {"flax": {"pipelined_examples_per_s": flax_speed}, "torch": None, "ratio": ratio}


def test_median_round_by_ratio_then_by_flax_speed():
    by_ratio = [_round(1.0, 1.3), _round(3.0, 0.9), _round(2.0, 1.1)]
    assert report.median_round(by_ratio)["ratio"] == 1.1
    assert report.median_round(by_ratio[:2])["ratio"] == 0.9  # lower middle of an even count
    by_speed = [_round(5.0, None), _round(1.0, None), _round(3.0, None)]
    assert report.median_round(by_speed)["flax"]["pipelined_examples_per_s"] == 3.0


def test_flax_over_torch_ratio():
    flax = {"pipelined_examples_per_s": 300.0}
    assert report.flax_over_torch(flax, {"examples_per_s": 200.0}) == 1.5
    assert report.flax_over_torch(flax, None) is None
    assert report.flax_over_torch(flax, {"skipped": "no counterpart"}) is None


def test_rounds_are_listed_in_the_table():
    result = _result(
        {
            "compile_s": 1.0,
            "steps": 5,
            "warmup": 2,
            "step_ms": {"median": 1.0, "p10": 1.0, "p90": 1.0, "iqr": 0.0},
            "batch_prep_ms": {"median": 0.1},
            "blocked_examples_per_s": 1.0,
            "pipelined_examples_per_s": 1.0,
            "pipelined_ms_per_step": 1.0,
            "compiles_while_timing": 0,
            "num_devices": 1,
            "strategy": "single",
        }
    )
    result["rounds"] = [
        {"flax_examples_per_s": 2.0, "torch_examples_per_s": 1.0, "ratio": 2.0},
        {"flax_examples_per_s": 1.0, "torch_examples_per_s": 1.0, "ratio": 1.0},
    ]
    table = report.format_table(result)
    assert re.search(r"^rounds +2, flax then torch each: ratios 2.00, 1.00;", table, re.MULTILINE)
