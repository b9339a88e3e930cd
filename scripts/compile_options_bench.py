"""The trainer's own train step under each `config.cpu_compiler_options` choice, side by side
in one process: every choice in turn each round, the order rotated, several rounds.

  .venv/bin/python scripts/compile_options_bench.py --config configs/cifar10.py --rounds 5 \\
      -- --config.data_dir=$(.venv/bin/python scripts/prepare_cifar10.py)
  .venv/bin/python scripts/compile_options_bench.py --config configs/fashion_d2l.py \\
      --choices auto,xla_default -- --config.model.conv_impl=xla

Prints one line per measurement and, last, one JSON line: each choice's pipelined
examples/s per round, their medians, and each choice's median against the first's.
Arguments after `--` are config overrides (`--config.a.b=v`).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_run import apply_overrides  # noqa: E402

from lenet_jax.bench.step_timing import measure_steps  # noqa: E402
from lenet_jax.config import load_config_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="FILE[:arg]")
    parser.add_argument("--choices", default="auto,xla_default", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args, overrides = parser.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    choices = args.choices.split(",")
    figures: dict[str, list[float]] = {choice: [] for choice in choices}
    for round_ in range(args.rounds):
        for choice in choices[round_ % len(choices) :] + choices[: round_ % len(choices)]:
            config = apply_overrides(load_config_file(args.config), overrides)
            config.cpu_compiler_options = choice
            result = measure_steps(config, steps=args.steps, warmup=args.warmup)
            figures[choice].append(result["pipelined_examples_per_s"])
            step_ms = result["step_ms"]["median"]
            print(f"round {round_ + 1} {choice}: {figures[choice][-1]:,.0f} ex/s, "
                  f"{step_ms:.1f} ms/step", flush=True)  # fmt: skip
    medians = {choice: statistics.median(values) for choice, values in figures.items()}
    first = medians[choices[0]]
    print(json.dumps({
        "config": args.config, "overrides": overrides, "examples_per_s": figures,
        "median_examples_per_s": medians,
        "median_vs_first": {c: round(m / first, 3) for c, m in medians.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
