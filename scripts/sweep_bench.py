"""A sweep in one process against the same members trained one by one, whole processes.

  flock /tmp/cpu.lock .venv/bin/python scripts/sweep_bench.py --config configs/fashion.py \\
      --seeds 2 --out runs/sweep_bench --sweep \\
      '{"optimizer.learning_rate": [1e-3, 2e-3, 4e-3, 8e-3], "optimizer.weight_decay": [0, 5e-4]}'

Runs `train` once with `config.sweep` (every member in one compiled step), then once per
member with that member's values set and `config.seed` its seed index, each a whole process
(its wall time includes start-up and compilation; the compilation cache stays on, as users
run it). Prints one JSON line: both wall times, their ratio, and the sweep's best member
against the best of the one-by-one runs. Arguments after `--` go to every `train`.
"""

import argparse
import itertools
import json
import os
import sys

from lenet_jax.bench import whole_run


def train(workdir: str, config: str, args: list[str]) -> float:
    """One whole `train` process (`whole_run.timed`); its wall seconds."""
    train = [sys.executable, "-m", "lenet_jax.train", f"--config={config}", "--config.plots=false"]
    return whole_run.timed([*train, f"--workdir={workdir}", *args])["wall_s"]


def final_test(workdir: str) -> dict:
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [row for row in rows if row["split"] == "test"][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--sweep", required=True, help="config.sweep's JSON (a grid)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", required=True, help="a new directory for the runs")
    parser.add_argument("extra", nargs="*", help="after --: overrides for every run")
    options = parser.parse_args()
    os.makedirs(options.out)
    grid = json.loads(options.sweep)
    sweep_dir = os.path.join(options.out, "sweep")
    sweep_args = [f"--config.sweep={options.sweep}", f"--config.num_replicas={options.seeds}"]
    sweep_seconds = train(sweep_dir, options.config, [*sweep_args, *options.extra])
    table = json.load(open(os.path.join(sweep_dir, "sweep.json")))
    alone_seconds, alone_best = 0.0, None
    for member, (values, seed) in enumerate(
        itertools.product(itertools.product(*grid.values()), range(options.seeds))
    ):
        workdir = os.path.join(options.out, f"member{member}")
        sets = [f"--config.{field}={value}" for field, value in zip(grid, values, strict=True)]
        alone_seconds += train(
            workdir, options.config, [*sets, f"--config.seed={seed}", *options.extra]
        )
        accuracy = final_test(workdir)["accuracy"]
        if alone_best is None or accuracy > alone_best["accuracy"]:
            alone_best = {"member": member, "accuracy": accuracy}
    figures = {
        "members": len(table),
        "sweep_wall_s": round(sweep_seconds, 1),
        "one_by_one_wall_s": round(alone_seconds, 1),
        "one_by_one_over_sweep": round(alone_seconds / sweep_seconds, 2),
        "sweep_best": table[0],
        "one_by_one_best": alone_best,
    }
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
