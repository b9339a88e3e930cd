"""What a population costs: whole `train` processes with 1 and N replicas, alternating.

  .venv/bin/python scripts/replicas_bench.py --config configs/fashion_d2l.py --replicas 8 --rounds 3

After one untimed run of each (it fills JAX's compilation cache, which every later run
then reads), each round runs 1 and 2 epochs of the config with one replica and with N, as
whole processes. The steady-state cost of an epoch is wall(2 epochs) - wall(1 epoch): start-up,
data loading and compilation drop out, and everything an epoch does (its test evaluation,
rows and checkpoint) stays in. Reports each round's figures and the median ratio N/1: N
separate runs would cost N x. `--steps K` also times K compiled steps in this process,
where the difference comes from: one model at the config's batch and at N times it, and N
replicas with `replica_loop=vmap` and `map`. Arguments after `--` go to `train`.
"""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

from lenet_jax import cli
from lenet_jax.bench import whole_run
from lenet_jax.config import load_config_file

REPO = Path(__file__).resolve().parents[1]
_CONFIG = flags.DEFINE_string("config", None, "Config file, optionally FILE:arg.", required=True)
_REPLICAS = flags.DEFINE_integer("replicas", 8, "N: replicas of the population.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds of (1 replica: 1, 2 epochs; N: 1, 2).")
_PYTHON = flags.DEFINE_string("python", sys.executable, "The interpreter that runs lenet_jax.")
_STEPS = flags.DEFINE_integer("steps", 0, "Also time this many compiled steps per variant.")


def step_ms(config_spec: str, *, replicas: int, loop: str, batch_scale: int, steps: int) -> float:
    """Milliseconds per compiled train step on one fixed batch (after 3 warm-up steps)."""
    import jax

    from lenet_jax.training.run import build_run

    config = load_config_file(config_spec)
    config.num_replicas, config.replica_loop, config.parallelism = replicas, loop, "single"
    config.batch_size *= batch_scale
    run = build_run(config)
    step = jax.jit(run.train_step(), donate_argnums=0)
    size = config.batch_size
    x, y = jax.device_put((run.dataset.train_images[:size], run.dataset.train_labels[:size]))
    state = run.init_state()
    for _ in range(3):
        state, _ = step(state, x, y, run.keys["train"])
    jax.block_until_ready(state)
    started = time.perf_counter()
    for _ in range(steps):
        state, _ = step(state, x, y, run.keys["train"])
    jax.block_until_ready(state)
    return round((time.perf_counter() - started) / steps * 1000, 1)


def step_figures(config_spec: str, n: int, steps: int) -> dict:
    variants = {
        "1 replica": dict(replicas=1, loop="auto", batch_scale=1),
        f"1 replica, batch x{n}": dict(replicas=1, loop="auto", batch_scale=n),
        f"{n} replicas, vmap": dict(replicas=n, loop="vmap", batch_scale=1),
        f"{n} replicas, map": dict(replicas=n, loop="map", batch_scale=1),
    }
    figures = {}
    for name, variant in variants.items():
        figures[name] = step_ms(config_spec, steps=steps, **variant)
        print(f"{name}: {figures[name]} ms/step", flush=True)
    return figures


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
        # An untimed run of each fills the compilation cache: no timed run compiles.
        for replicas in (1, n) if _ROUNDS.value else ():
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
    median = statistics.median(r["ratio"] for r in rounds) if rounds else None
    if rounds:
        print(
            f"median steady-state cost of {n} replicas: {median:.2f}x one replica "
            f"(ratios {[r['ratio'] for r in rounds]}; {n} separate runs: {n}x)"
        )
    summary = {"replicas": n, "median_ratio": median, "rounds": rounds}
    if _STEPS.value:
        summary["step_ms"] = step_figures(_CONFIG.value, n, _STEPS.value)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    os.chdir(REPO)
    app.run(main)
