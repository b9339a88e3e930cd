"""The trainer's evaluation of the test split at several evaluation batch sizes, side by side
in one process: every size in turn each round, the order rotated, several rounds.

  .venv/bin/python scripts/eval_bench.py --config configs/fashion_d2l.py --sizes 0,1000
  .venv/bin/python scripts/eval_bench.py --config configs/cifar10.py --sizes 0,1000 \\
      -- --config.data_dir=$(.venv/bin/python scripts/prepare_cifar10.py)

Each measurement is what `Loop.evaluate` does once the test batches are placed: the run's
compiled eval step over every batch, then the predictions fetched to the host. Size 0 is
`eval_batch_size=0` (auto: `batches.eval_batch_size`). Prints one line per measurement and,
last, one JSON line: seconds per evaluation for each size, their medians, and each size's
median against the first's. Arguments after `--` are config overrides (`--config.a.b=v`).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_run import apply_overrides  # noqa: E402

from lenet_jax.config import load_config_file  # noqa: E402
from lenet_jax.training import batches  # noqa: E402
from lenet_jax.training.run import build_run  # noqa: E402


def evaluation(config):
    """A function that evaluates the test split once as the trainer does; returns seconds."""
    run = build_run(config)
    strategy = run.strategy
    state = strategy.place_state(run.init_state())
    eval_step = strategy.compile_eval(run.eval_step())
    images, labels = run.dataset.split("test")
    placed = list(batches.eval_batches(strategy, images, labels, batches.eval_batch_size(config)))

    def once() -> float:
        started = time.perf_counter()
        outputs = [eval_step(state, *batch) for batch in placed]
        jax.device_get([predictions for _, predictions in outputs])
        jax.block_until_ready([sums for sums, _ in outputs])
        return time.perf_counter() - started

    once()  # compiles
    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="FILE[:arg]")
    parser.add_argument("--sizes", default="0,1000", help="comma-separated; 0 = auto")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="evaluations per measurement")
    args, overrides = parser.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    sizes = [int(size) for size in args.sizes.split(",")]
    evaluations = {}
    for size in sizes:
        config = apply_overrides(load_config_file(args.config), overrides)
        config.eval_batch_size = size
        evaluations[size] = evaluation(config)
    config.eval_batch_size = 0
    auto = batches.eval_batch_size(config)
    figures: dict[int, list[float]] = {size: [] for size in sizes}
    for round_ in range(args.rounds):
        for size in sizes[round_ % len(sizes) :] + sizes[: round_ % len(sizes)]:
            seconds = statistics.median(evaluations[size]() for _ in range(args.repeats))
            figures[size].append(round(seconds, 4))
            print(f"round {round_ + 1} eval_batch_size={size}: {seconds:.3f} s", flush=True)
    medians = {size: round(statistics.median(values), 4) for size, values in figures.items()}
    first = medians[sizes[0]]
    print(
        json.dumps(
            {
                "config": args.config,
                "overrides": overrides,
                "auto_is": auto,
                "seconds": figures,
                "median_seconds": medians,
                "median_vs_first": {size: round(m / first, 3) for size, m in medians.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
