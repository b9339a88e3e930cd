"""Fault injection: interrupt a real training run N times at random, then check nothing was lost.

  .venv/bin/python scripts/fault_inject.py --interruptions 20 --seed 0

One uninterrupted run of the config is the reference. Then the same command runs on a
second workdir and is stopped N times, each time after a random delay, by SIGTERM or by
`kill -9` (chosen at random): anywhere in start-up, a step, an evaluation, a checkpoint
write or the plots. After each interruption the same command is simply run again. When a rerun
finishes before its signal, that workdir's cycle is over: every metrics.jsonl row (timing
fields aside) and every final parameter must equal the reference's, bit for bit, and a new
cycle starts on a fresh workdir, until N signals were delivered. Prints one line per
attempt and per cycle and, last, a JSON summary; exits 1 if anything differs.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
_CONFIG = flags.DEFINE_string("config", "configs/fashion.py:smoke", "Config file[:arg].")
_INTERRUPTIONS = flags.DEFINE_integer("interruptions", 20, "How many times to interrupt.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the delays and signals.")
_EPOCHS = flags.DEFINE_integer("epochs", 4, "config.num_epochs of the run.")
_KEEP = flags.DEFINE_string("workdir", None, "Keep the two workdirs here (default: temporary).")
TIMING = ("examples_per_sec", "epoch_seconds")


def command(workdir: Path, overrides: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lenet_jax.train",
        f"--config={_CONFIG.value}",
        f"--workdir={workdir}",
        f"--config.num_epochs={_EPOCHS.value}",
        *overrides,
    ]


def rows(workdir: Path) -> list[dict]:
    with open(workdir / "metrics.jsonl") as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f]


def final_params(workdir: Path):
    from lenet_jax.report.inference import load_run

    return load_run(str(workdir), "latest").state


def attempt(workdir: Path, overrides: list[str], delay: float, how: str) -> dict:
    """Runs the command, sends `how` after `delay` s unless it finished; what happened."""
    process = subprocess.Popen(
        command(workdir, overrides), cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        pass
    finished = process.poll() is not None
    if not finished:
        process.send_signal(getattr(signal, how))
    stderr = process.communicate(timeout=300)[1]
    code = process.returncode
    entry = {"signal": None if finished else how, "after_s": round(delay, 2), "exit": code}
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if errors or code not in (0, 143, -signal.SIGTERM, -signal.SIGKILL):
        entry["errors"] = errors or stderr.strip().splitlines()[-3:]
    return entry


def identical(reference: Path, victim: Path) -> tuple[bool, bool]:
    """(every row equal, every final parameter bit-identical)."""
    import jax
    import numpy as np

    a, b = final_params(reference), final_params(victim)
    same = all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    return rows(victim) == rows(reference), same


def main(argv: list[str]) -> None:
    from absl import logging

    logging.set_verbosity(logging.ERROR)  # orbax logs each restore at INFO
    overrides = argv[1:]
    rng = random.Random(_SEED.value)
    base = Path(_KEEP.value or tempfile.mkdtemp(prefix="lenet_jax_faults_"))
    reference = base / "reference"
    started = time.perf_counter()
    subprocess.run(command(reference, overrides), cwd=REPO, check=True, capture_output=True)
    wall = time.perf_counter() - started
    delivered, cycles, log = 0, [], []
    while delivered < _INTERRUPTIONS.value:  # each cycle: one workdir, interrupted to its end
        victim = base / f"interrupted-{len(cycles) + 1}"
        while delivered < _INTERRUPTIONS.value:
            entry = attempt(
                victim, overrides, rng.uniform(0.2, wall), rng.choice(["SIGTERM", "SIGKILL"])
            )
            entry["cycle"] = len(cycles) + 1
            log.append(entry)
            print(json.dumps(entry), flush=True)
            if entry["signal"] is None:
                break
            delivered += 1
        if log[-1]["signal"] is not None:  # the last interruption: run it to its end
            log.append({**attempt(victim, overrides, 600, "SIGTERM"), "cycle": len(cycles) + 1})
        same_rows, same_params = identical(reference, victim)
        cycles.append({"cycle": len(cycles) + 1, "rows_identical": same_rows,
                       "params_identical": same_params})  # fmt: skip
        print(json.dumps(cycles[-1]), flush=True)
    summary = {
        "interruptions": delivered,
        "sigterm": sum(e["signal"] == "SIGTERM" for e in log),
        "sigkill": sum(e["signal"] == "SIGKILL" for e in log),
        "cycles": len(cycles),
        "runs_with_errors": [e for e in log if "errors" in e],
        "all_rows_identical": all(c["rows_identical"] for c in cycles),
        "all_params_identical": all(c["params_identical"] for c in cycles),
        "reference_wall_s": round(wall, 2),
        "workdirs": str(base),
    }
    print(json.dumps(summary), flush=True)
    ok = summary["all_rows_identical"] and summary["all_params_identical"]
    if not ok or summary["runs_with_errors"]:
        sys.exit(1)


if __name__ == "__main__":
    os.chdir(REPO)
    app.run(main)
