"""What a population costs: whole `train` processes with 1 and N replicas, alternating.

  .venv/bin/python scripts/replicas_bench.py --config configs/fashion_d2l.py --replicas 8 --rounds 3

After one untimed run of each (it fills JAX's compilation cache, which every later run
then reads), each round runs 1 and 2 epochs of the config with one replica and with N, as
whole processes. The steady-state cost of an epoch is wall(2 epochs) - wall(1 epoch): start-up,
data loading and compilation drop out, and everything an epoch does (its test evaluation,
rows and checkpoint) stays in. Reports each round's figures and the median ratio N/1: N
separate runs would cost N x. Arguments after `--` go to `train`.
"""

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from absl import app, flags

from lenet_jax import cli
from lenet_jax.bench import whole_run

REPO = Path(__file__).resolve().parents[1]
_CONFIG = flags.DEFINE_string("config", None, "Config file, optionally FILE:arg.", required=True)
_REPLICAS = flags.DEFINE_integer("replicas", 8, "N: replicas of the population.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds of (1 replica: 1, 2 epochs; N: 1, 2).")
_PYTHON = flags.DEFINE_string("python", sys.executable, "The interpreter that runs lenet_jax.")


def steady_epoch(config: str, replicas: int, overrides: list[str], python: str) -> dict:
    """wall(1 epoch), wall(2 epochs) and their difference for `replicas` replicas."""
    walls = {}
    for epochs in (1, 2):
        with tempfile.TemporaryDirectory(prefix="lenet_jax_replicas_") as workdir:
            command = whole_run.train_command(
                python, config, workdir, epochs, [*overrides, f"--config.num_replicas={replicas}"]
            )
            walls[epochs] = whole_run.timed(command, cwd=str(REPO))["wall_s"]
    return {"wall_1": walls[1], "wall_2": walls[2], "epoch_s": round(walls[2] - walls[1], 2)}


def main(argv: list[str]) -> None:
    overrides, n = argv[1:], _REPLICAS.value
    rounds = []
    with cli.user_errors_as_one_line():
        for replicas in (1, n):  # fills the compilation cache, so no timed run compiles more
            steady_epoch(_CONFIG.value, replicas, overrides, _PYTHON.value)
        for r in range(_ROUNDS.value):
            one = steady_epoch(_CONFIG.value, 1, overrides, _PYTHON.value)
            many = steady_epoch(_CONFIG.value, n, overrides, _PYTHON.value)
            ratio = round(many["epoch_s"] / one["epoch_s"], 2)
            rounds.append({"one": one, "many": many, "ratio": ratio})
            print(
                f"round {r + 1}: 1 replica {one['epoch_s']:.2f} s/epoch (walls {one['wall_1']}, "
                f"{one['wall_2']}); {n} replicas {many['epoch_s']:.2f} s/epoch (walls "
                f"{many['wall_1']}, {many['wall_2']}); {n}/1 = {ratio:.2f}x",
                flush=True,
            )
    median = statistics.median(r["ratio"] for r in rounds)
    print(
        f"median steady-state cost of {n} replicas: {median:.2f}x one replica "
        f"(ratios {[r['ratio'] for r in rounds]}; {n} separate runs: {n}x)"
    )
    print(json.dumps({"replicas": n, "median_ratio": median, "rounds": rounds}), flush=True)


if __name__ == "__main__":
    os.chdir(REPO)
    app.run(main)
