"""Whole processes, timed as a user feels them: `train` against torch_ref.py, start to exit.

A fast step inside a slow loop is not a fast trainer, so this times complete commands:
the lenet_jax `train` CLI with `num_epochs` = 1 and N, and torch_ref.py with `--epochs` 1
and N, alternating, several rounds. The steady-state cost of an epoch is
(wall(N) - wall(1)) / (N - 1): it leaves out start-up, data loading and compilation, and
keeps everything a run does per epoch (for lenet_jax: the test evaluation, the rows and
the checkpoint; torch_ref.py evaluates once, at the end). Each lenet_jax run also records
when each of its output lines appeared, to show where a run's fixed cost goes.
"""

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import ml_collections
import numpy as np

from lenet_jax.bench.torch_reference import DEFAULT_TORCH_REF, torch_counterpart, torch_ref_env
from lenet_jax.errors import UserError


def timed(command: Sequence[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Runs `command` to its exit; wall seconds and (seconds, line) for each output line."""
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
    )
    timeline = [(round(time.perf_counter() - started, 3), line.rstrip()) for line in process.stdout]
    process.wait()
    wall = time.perf_counter() - started
    if process.returncode:
        tail = " | ".join(line for _, line in timeline[-3:])
        raise UserError(f"{' '.join(command)} failed (exit {process.returncode}): {tail}")
    return {"wall_s": round(wall, 3), "timeline": timeline}


def train_command(
    python: str, config_spec: str, workdir: str, epochs: int, overrides: Sequence[str]
) -> list[str]:
    return [
        python,
        "-m",
        "lenet_jax.train",
        f"--config={config_spec}",
        f"--workdir={workdir}",
        *overrides,
        f"--config.num_epochs={epochs}",
    ]


def torch_command(
    python: str, config: ml_collections.ConfigDict, epochs: int, script=DEFAULT_TORCH_REF
) -> list[str]:
    model, _ = torch_counterpart(config)
    if model is None:
        raise UserError(f"torch_ref.py has no counterpart of {config.model.name!r}")
    return [
        python,
        str(script),
        model,
        f"--epochs={epochs}",
        f"--batch={config.batch_size}",
        f"--lr={config.optimizer.learning_rate}",
    ]


def steady_state(wall_1: float, wall_n: float, n: int) -> float:
    """Seconds per epoch once running: (wall(N) - wall(1)) / (N - 1)."""
    return (wall_n - wall_1) / (n - 1)


def compare(
    config: ml_collections.ConfigDict,
    config_spec: str,
    overrides: Sequence[str],
    *,
    epochs: int,
    rounds: int,
    python: str = sys.executable,
    torch_python: str | None = None,
    torch_script=DEFAULT_TORCH_REF,
) -> dict:
    """`rounds` rounds of: train 1 epoch, train N, torch 1, torch N; the medians and ratios."""
    if epochs < 2:
        raise UserError(f"--epochs={epochs}: the steady state needs at least 2")
    results = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="lenet_jax_whole_") as tmp:
            one = timed(train_command(python, config_spec, f"{tmp}/1", 1, overrides))
            many = timed(train_command(python, config_spec, f"{tmp}/n", epochs, overrides))
        entry = {"flax_1": one, "flax_n": many}
        if torch_python:
            env = torch_ref_env(config)
            entry["torch_1"] = timed(torch_command(torch_python, config, 1, torch_script), env)
            entry["torch_n"] = timed(torch_command(torch_python, config, epochs, torch_script), env)
        results.append(entry)
    return summarize(results, epochs)


def summarize(results: Sequence[dict], epochs: int) -> dict:
    """Per-round walls and steady states, their medians, and torch/flax ratios (>1: flax faster)."""

    def median(values):
        return round(float(np.median(values)), 3)

    summary = {"epochs": epochs, "rounds": []}
    for entry in results:
        row = {
            "flax_1_s": entry["flax_1"]["wall_s"],
            "flax_n_s": entry["flax_n"]["wall_s"],
            "flax_epoch_s": round(
                steady_state(entry["flax_1"]["wall_s"], entry["flax_n"]["wall_s"], epochs), 3
            ),
        }
        if "torch_1" in entry:
            row |= {
                "torch_1_s": entry["torch_1"]["wall_s"],
                "torch_n_s": entry["torch_n"]["wall_s"],
                "torch_epoch_s": round(
                    steady_state(entry["torch_1"]["wall_s"], entry["torch_n"]["wall_s"], epochs), 3
                ),
            }
            row["steady_ratio"] = round(row["torch_epoch_s"] / row["flax_epoch_s"], 3)
            row["one_epoch_ratio"] = round(row["torch_1_s"] / row["flax_1_s"], 3)
        summary["rounds"].append(row)
    for key in summary["rounds"][0]:
        summary[f"median_{key}"] = median([r[key] for r in summary["rounds"]])
    summary["flax_1_timeline"] = results[-1]["flax_1"]["timeline"]
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"whole processes, {len(summary['rounds'])} rounds, N = {summary['epochs']} epochs"]
    for i, row in enumerate(summary["rounds"], 1):
        lines.append(f"  round {i}: " + "  ".join(f"{k} {v}" for k, v in row.items()))
    medians = {k: v for k, v in summary.items() if k.startswith("median_")}
    lines.append("  medians: " + "  ".join(f"{k[7:]} {v}" for k, v in medians.items()))
    lines.append("  timeline of the last 1-epoch lenet_jax run (seconds since start):")
    lines += [f"    {t:7.2f}  {line[:100]}" for t, line in summary["flax_1_timeline"]]
    return os.linesep.join(lines)
