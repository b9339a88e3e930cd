"""Benchmark of the trainer's own compiled train step, optionally against eager PyTorch.

  .venv/bin/python scripts/benchmark.py --config configs/fashion_d2l.py --compare-torch --rounds 5
  .venv/bin/python scripts/benchmark.py --config configs/fashion.py:smoke --time-to-target \\
      --targets 0.5,0.6 --json runs/bench_smoke.json
  .venv/bin/python scripts/benchmark.py --config configs/cifar10.py --compare-torch \\
      --config.data_dir=$(.venv/bin/python scripts/prepare_cifar10.py)

The measurements live in `lenet_jax/bench/` (step timing, time to target, the PyTorch
reference, the report); this is their command line. `--compare-torch` runs
../shared/bench/torch_ref.py (eager PyTorch) for warmup + steps steps of the matching model,
with `--torch_python` (default: this interpreter). On a shared 2-core machine either side
can run slow for a minute, so `--rounds N` alternates the two N times and reports the round
with the median ratio (all ratios listed). Progress lines go to stderr; stdout holds the
table and, last, one JSON line with every figure.
"""

import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from lenet_jax import cli
from lenet_jax.bench import report, torch_reference
from lenet_jax.bench.machine import machine_facts
from lenet_jax.bench.step_timing import measure_steps
from lenet_jax.bench.targets import run_time_to_target
from lenet_jax.errors import UserError


def run_benchmark(config: ml_collections.ConfigDict, options: dict) -> dict:
    """Every measurement `options` asks for; progress output goes to stderr."""
    torch_model, differences = torch_reference.torch_counterpart(config)
    if options["compare_torch"] and torch_model is not None:  # before minutes, not after
        torch_reference.check_torch_ref(options["torch_ref"], options["torch_python"])
    result = {
        "config": options["config_spec"],
        "overrides": options["overrides"],
        "model": config.model.name,
        "dataset": config.dataset,
        "batch_size": config.batch_size,
        "optimizer": config.optimizer.name,
        "learning_rate": config.optimizer.learning_rate,
        "machine": machine_facts(),
    }
    with contextlib.redirect_stdout(sys.stderr):
        rounds = []
        for _ in range(options["rounds"]):
            flax = measure_steps(config, steps=options["steps"], warmup=options["warmup"])
            torch = None
            if options["compare_torch"]:
                torch = _compare_torch(config, torch_model, differences, options)
            ratio = report.flax_over_torch(flax, torch)
            rounds.append({"flax": flax, "torch": torch, "ratio": ratio})
        shown = report.median_round(rounds)
        result["flax"] = shown["flax"]
        if options["compare_torch"]:
            result["torch"], result["ratio_flax_over_torch"] = shown["torch"], shown["ratio"]
        if len(rounds) > 1:
            result["rounds"] = [report.round_summary(r) for r in rounds]
        if options["time_to_target"]:
            result["time_to_target"] = run_time_to_target(config, options["targets"])
    return result


def _compare_torch(config, torch_model: str | None, differences: list[str], options) -> dict:
    if torch_model is None:
        return {"skipped": torch_reference.no_counterpart_reason(config)}
    torch = torch_reference.run_torch_ref(
        config,
        torch_model,
        steps=options["warmup"] + options["steps"],
        script=options["torch_ref"],
        threads=options["torch_threads"],
        python=options["torch_python"],
    )
    version = torch.get("framework", "").removeprefix("pytorch ")
    return {**torch, "torch_version": version, "differences": differences}


def parse_targets(text: str) -> list[float]:
    try:
        targets = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--targets={text!r}: expected accuracies such as 0.85,0.90") from None
    if not targets or not all(0 < t <= 1 for t in targets):
        raise UserError(f"--targets={text!r}: expected accuracies in (0, 1]")
    return targets


def define_flags() -> dict:
    """The command's flags; only called when run as a script, so importing registers none."""
    return {
        "config": cli.define_config_flag(),
        "steps": flags.DEFINE_integer("steps", 100, "Timed steps, per-step and pipelined each."),
        "warmup": flags.DEFINE_integer("warmup", 10, "Untimed steps after the compile step."),
        "rounds": flags.DEFINE_integer(
            "rounds", 1, "Measure (flax, then torch) this many times; report the median round."
        ),
        "targets": flags.DEFINE_string("targets", "0.85,0.90", "Test accuracies to time."),
        "time_to_target": flags.DEFINE_bool(
            "time_to_target", False, "Also run train_and_evaluate and time each target."
        ),
        "compare_torch": flags.DEFINE_bool(
            "compare_torch", False, "Also run the eager PyTorch reference."
        ),
        "torch_ref": flags.DEFINE_string(
            "torch_ref",
            str(torch_reference.DEFAULT_TORCH_REF),
            "Path of the PyTorch reference script.",
        ),
        "torch_python": flags.DEFINE_string(
            "torch_python", sys.executable, "Python interpreter with torch installed."
        ),
        "torch_threads": flags.DEFINE_integer(
            "torch_threads", 0, "torch intra-op threads (0: torch's own choice)."
        ),
        "json": flags.DEFINE_string("json", None, "Also write the figures to this JSON file."),
    }


def dehyphenate(argv: list[str], names: Sequence[str]) -> list[str]:
    """Accepts `--compare-torch` for `--compare_torch`, `--no-compare-torch` too (absl does not)."""
    out = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        bare = name[2:].replace("-", "_") if name.startswith("--") else ""
        if bare in names:
            arg = f"--{bare}{sep}{value}"
        elif bare.startswith("no") and bare[2:].lstrip("_") in names:
            arg = f"--no{bare[2:].lstrip('_')}{sep}{value}"
        out.append(arg)
    return out


def main(argv: list[str], flag_holders: dict) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    options = {name: holder.value for name, holder in flag_holders.items()}
    if options["rounds"] < 1:
        raise app.UsageError(f"--rounds={options['rounds']} must be >= 1")
    config_flag = flags.FLAGS[flag_holders["config"].name]
    with cli.user_errors_as_one_line():
        config = cli.config_or_error(config_flag)
        overrides = config_flags.get_override_values(config_flag)
        options |= {
            "targets": parse_targets(options["targets"]),
            "config_spec": config_flags.get_config_filename(config_flag),
            "overrides": [f"--config.{k}={v}" for k, v in overrides.items()],
        }
        result = run_benchmark(config, options)
    print(report.format_table(result))
    if options["json"]:
        Path(options["json"]).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _FLAGS = define_flags()
    flags.mark_flags_as_required(["config"])
    app.run(
        lambda argv: main(argv, _FLAGS),
        flags_parser=lambda argv: cli.parse_flags(dehyphenate(argv, list(_FLAGS))),
    )
