"""Benchmark of the trainer's own compiled train step, optionally against eager PyTorch.

  .venv/bin/python scripts/benchmark.py --config configs/fashion_d2l.py --compare-torch --rounds 5
  .venv/bin/python scripts/benchmark.py --config configs/fashion.py:smoke --time-to-target \\
      --targets 0.5,0.6 --json runs/bench_smoke.json
  .venv/bin/python scripts/benchmark.py --config configs/cifar10.py --compare-torch \\
      --config.data_dir=$(.venv/bin/python scripts/prepare_cifar10.py)

The step is the trainer's: `trainer.make_setup` builds data, model, optimizer and device
strategy, and `trainer.compile_steps` builds and compiles the step (`steps.make_train_step` through
the strategy's `compile_train`), so nothing here can drift from what training runs.
Batches come from the real dataset in the trainer's epoch order.

Figures, in order of measurement:
  compile   the first step call until its state is ready (trace, compile, one step);
  per step  after `--warmup` more steps, `--steps` steps each timed on its own, blocking
            on the new state: median and spread of the step's latency (batch already on
            device; the host's batch gather and transfer are timed apart);
  pipelined `--steps` more steps as the training loop runs them (gather, transfer,
            dispatch; no blocking until the end): the throughput training achieves.
`--compare-torch` then runs ../shared/bench/torch_ref.py (eager PyTorch) for
warmup + steps steps of the matching model. On a shared 2-core machine either side can
run 20-30% slow for a minute, so `--rounds N` alternates the two N times and reports the
round with the median ratio (all ratios listed). `--time-to-target` runs the whole
`train_and_evaluate` in a temporary workdir. Progress lines go to stderr; stdout holds
the table and, last, one JSON line with every figure.
"""

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import jax
import ml_collections
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from lenet_jax import batches, cli, trainer
from lenet_jax.errors import UserError
from lenet_jax.metrics_log import read_rows
from lenet_jax.state import create_train_state

DEFAULT_TORCH_REF = Path(__file__).resolve().parents[2] / "shared" / "bench" / "torch_ref.py"
TORCH_PIN = "torch==2.13.0"
# (lenet_jax model, dataset) -> torch_ref.py model, and the optimizer torch_ref uses for it.
TORCH_COUNTERPARTS = {
    ("lenet_d2l", "fashion_mnist"): ("d2l_lenet", "sgd"),
    ("cifar_cnn", "cifar10"): ("cifar_cnn", "adam"),
}
_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


# Machine facts and timing helpers.


def machine_facts() -> dict:
    device = jax.devices()[0]
    facts = {
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    for package in ("jax", "jaxlib", "flax", "optax"):
        facts[f"{package}_version"] = _version(package)
    return facts


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Median and spread of per-step times, in milliseconds."""
    ms = np.asarray(seconds, np.float64) * 1e3
    p10, p25, p50, p75, p90 = np.percentile(ms, [10, 25, 50, 75, 90])
    summary = {
        "median": p50,
        "p10": p10,
        "p90": p90,
        "p25": p25,
        "p75": p75,
        "iqr": p75 - p25,
        "mean": ms.mean(),
        "min": ms.min(),
        "max": ms.max(),
    }
    return {k: round(float(v), 4) for k, v in summary.items()}


@contextlib.contextmanager
def count_compiles() -> Iterator[dict[str, int]]:
    """Counts XLA compilations inside the block: any in a timed window spoil its figures."""
    counter = {"compiles": 0}

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == _BACKEND_COMPILE_EVENT:
            counter["compiles"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


# The step measurement.


def host_batches(setup: trainer.Setup) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """`batch(step)`: this process's host arrays of global step `step`, as the trainer cuts them."""
    batch, per_epoch = setup.config.batch_size, setup.steps_per_epoch
    num_examples = len(setup.dataset.train_labels)
    share = setup.strategy.process_slice(batch)
    orders: dict[int, np.ndarray] = {}

    def get(step: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, i = divmod(step, per_epoch)
        if epoch not in orders:
            orders[epoch] = trainer.epoch_order(setup.keys["data"], epoch, num_examples)
        idx = batches.batch_indices(orders[epoch], batch, i, share)
        return setup.dataset.train_images[idx], setup.dataset.train_labels[idx]

    return get


def measure_steps(config: ml_collections.ConfigDict, *, steps: int = 100, warmup: int = 10) -> dict:
    """Compile time, per-step latency and pipelined throughput of the trainer's train step."""
    if steps < 1 or warmup < 0:
        raise UserError(f"--steps={steps} must be >= 1 and --warmup={warmup} >= 0")
    setup = trainer.make_setup(config, workdir="")
    strategy, key, batch_at = setup.strategy, setup.keys["train"], host_batches(setup)
    state = create_train_state(setup.model, setup.tx, setup.keys["init"], setup.dataset.image_shape)
    state = strategy.place_state(state)
    # The Loop's own compiled step; its checkpoint, metrics and preemption parts stay unused.
    train_step, _ = trainer.compile_steps(setup)

    def place(step: int) -> tuple:
        return strategy.place_batch(*batch_at(step))

    started = time.perf_counter()
    state = jax.block_until_ready(train_step(state, *place(0), key))[0]
    compile_s = time.perf_counter() - started
    for step in range(1, 1 + warmup):
        state, _ = train_step(state, *place(step), key)
    jax.block_until_ready(state)
    first = 1 + warmup
    with count_compiles() as compiles:
        state, step_s, prep_s = _blocked_steps(train_step, state, key, place, first, steps)
        state, pipelined_s, loss = _pipelined_steps(
            train_step, state, key, place, first + steps, steps
        )
    return {
        "strategy": strategy.name,
        "num_devices": strategy.num_devices,
        "steps_per_epoch": setup.steps_per_epoch,
        "compile_s": round(compile_s, 4),
        "warmup": warmup,
        "steps": steps,
        "step_ms": summarize_ms(step_s),
        "batch_prep_ms": summarize_ms(prep_s),
        "blocked_examples_per_s": round(config.batch_size / float(np.median(step_s)), 1),
        "pipelined_s": round(pipelined_s, 4),
        "pipelined_ms_per_step": round(pipelined_s / steps * 1e3, 4),
        "pipelined_examples_per_s": round(steps * config.batch_size / pipelined_s, 1),
        "compiles_while_timing": compiles["compiles"],
        "final_step": int(jax.device_get(strategy.host_state(state).step)),
        "final_loss": loss,
    }


def _blocked_steps(train_step, state, key, place, first: int, n: int):
    """`n` steps, each timed alone up to its new state being ready; batch prep timed apart."""
    step_s, prep_s = [], []
    for step in range(first, first + n):
        started = time.perf_counter()
        batch = jax.block_until_ready(place(step))
        placed = time.perf_counter()
        state, metrics = train_step(state, *batch, key)
        jax.block_until_ready((state, metrics))
        step_s.append(time.perf_counter() - placed)
        prep_s.append(placed - started)
    return state, step_s, prep_s


def _pipelined_steps(train_step, state, key, place, first: int, n: int):
    """`n` steps as the training loop runs them: their batches placed first (as one chunk,
    `lenet_jax.batches`), then dispatched back to back, one sync at the end; all timed."""
    pending = []
    started = time.perf_counter()
    placed = [place(step) for step in range(first, first + n)]
    for batch in placed:
        state, metrics = train_step(state, *batch, key)
        pending.append(metrics)
    jax.block_until_ready((state, pending))
    seconds = time.perf_counter() - started
    loss = float(jax.device_get(pending[-1]["loss"]))
    if not np.isfinite(loss):
        raise UserError(f"train loss became {loss}: the step diverged; timings are meaningless")
    return state, seconds, round(loss, 6)


# Time to target accuracy.


def time_to_targets(rows: Sequence[dict], targets: Sequence[float]) -> dict[str, dict | None]:
    """For each target, the first epoch whose test accuracy reached it (None: never).

    `train_seconds` sums the train rows' `epoch_seconds` up to that epoch: training time
    (the first epoch's includes compilation), without evaluation and checkpoint saving.
    """
    train_seconds, cumulative = 0.0, {}
    for row in rows:
        if row["split"] == "train":
            train_seconds += row["epoch_seconds"]
            cumulative[row["epoch"]] = train_seconds
    reached: dict[str, dict | None] = {}
    for target in targets:
        hit = next(
            (r for r in rows if r["split"] == "test" and r["accuracy"] >= target),
            None,
        )
        reached[f"{target:g}"] = hit and {
            "epoch": hit["epoch"],
            "step": hit["step"],
            "test_accuracy": hit["accuracy"],
            "train_seconds": round(cumulative[hit["epoch"]], 4),
        }
    return reached


def run_time_to_target(config: ml_collections.ConfigDict, targets: Sequence[float]) -> dict:
    """Trains per `config` in a fresh temporary workdir; wall time and time to each target."""
    with tempfile.TemporaryDirectory(prefix="lenet_jax_bench_") as workdir:
        started = time.perf_counter()
        test = trainer.train_and_evaluate(config, workdir)
        wall_s = time.perf_counter() - started
        rows = read_rows(os.path.join(workdir, "metrics.jsonl"))
    train_s = sum(r["epoch_seconds"] for r in rows if r["split"] == "train")
    return {
        "epochs": config.num_epochs,
        "wall_s": round(wall_s, 3),
        "train_s": round(train_s, 3),
        "other_s": round(wall_s - train_s, 3),  # data loading, evaluation, checkpoints, plots
        "final_test_accuracy": test["accuracy"],
        "test_accuracy_by_epoch": [r["accuracy"] for r in rows if r["split"] == "test"],
        "targets": time_to_targets(rows, targets),
    }


# The PyTorch reference.


def torch_counterpart(config: ml_collections.ConfigDict) -> tuple[str | None, list[str]]:
    """torch_ref.py's model for this config (None: there is none), and how the two differ."""
    found = TORCH_COUNTERPARTS.get((config.model.name, config.dataset))
    if found is None:
        return None, []
    torch_model, torch_optimizer = found
    differences = []
    opt = config.optimizer
    if opt.name != torch_optimizer:
        differences.append(f"optimizer {opt.name} (torch_ref: {torch_optimizer})")
    if opt.name == "sgd" and (opt.momentum or opt.nesterov):
        differences.append(f"sgd momentum {opt.momentum} (torch_ref: none)")
    if opt.weight_decay:
        differences.append(f"weight_decay {opt.weight_decay} (torch_ref: 0)")
    if opt.schedule != "constant":
        differences.append(f"{opt.schedule} lr schedule (torch_ref: constant)")
    if config.model.dropout_rate:
        differences.append(f"dropout {config.model.dropout_rate} (torch_ref: none)")
    if config.label_smoothing:
        differences.append(f"label_smoothing {config.label_smoothing} (torch_ref: 0)")
    augment = config.augment
    if augment.crop_padding or augment.flip or augment.cutout_size:
        differences.append("on-device augmentation (torch_ref: none)")
    if config.dataset == "cifar10" and not config.data_dir:
        differences.append("torch_ref trains on random CIFAR-shaped images (no data_dir)")
    return torch_model, differences


def check_torch_ref(script: str | os.PathLike) -> None:
    """The comparison's prerequisites: torch_ref.py exists and torch imports."""
    if not os.path.isfile(script):
        raise UserError(f"--torch_ref: no torch reference script at {script}")
    if importlib.util.find_spec("torch") is None:
        raise UserError(
            f"--compare-torch: torch is not importable by {sys.executable}; "
            f"{Path(sys.executable).parent / 'pip'} install {TORCH_PIN} "
            "(a CPU build on this machine's disk)"
        )


def run_torch_ref(
    config: ml_collections.ConfigDict,
    torch_model: str,
    *,
    steps: int,
    script: str | os.PathLike = DEFAULT_TORCH_REF,
    threads: int = 0,
) -> dict:
    """Runs torch_ref.py for `steps` steps (one epoch at most); returns its JSON line."""
    command = [
        sys.executable,
        str(script),
        torch_model,
        "--epochs=1",
        f"--batch={config.batch_size}",
        f"--lr={config.optimizer.learning_rate}",
        f"--max-steps={steps}",
        f"--threads={threads}",
    ]
    env = dict(os.environ)
    if config.dataset == "cifar10":
        env["CIFAR_DIR"] = config.data_dir
    elif config.data_dir:
        env["FASHION_DIR"] = config.data_dir
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise UserError(f"{' '.join(command)} failed (exit {done.returncode}): {tail}")
    result = json.loads(lines[-1])
    return {"command": command, **result}


# Command line.


def run_benchmark(config: ml_collections.ConfigDict, options: dict) -> dict:
    """Every measurement `options` asks for; progress output goes to stderr."""
    torch_model, differences = torch_counterpart(config)
    if options["compare_torch"] and torch_model is not None:
        check_torch_ref(options["torch_ref"])  # before minutes of measuring, not after
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
            rounds.append({"flax": flax, "torch": torch, "ratio": flax_over_torch(flax, torch)})
        shown = median_round(rounds)
        result["flax"] = shown["flax"]
        if options["compare_torch"]:
            result["torch"], result["ratio_flax_over_torch"] = shown["torch"], shown["ratio"]
        if len(rounds) > 1:
            result["rounds"] = [_round_summary(r) for r in rounds]
        if options["time_to_target"]:
            result["time_to_target"] = run_time_to_target(config, options["targets"])
    return result


def flax_over_torch(flax: dict, torch: dict | None) -> float | None:
    """Pipelined flax examples/s over torch's, or None without a torch figure."""
    torch_speed = (torch or {}).get("examples_per_s")
    return round(flax["pipelined_examples_per_s"] / torch_speed, 3) if torch_speed else None


def median_round(rounds: Sequence[dict]) -> dict:
    """The round with the median ratio (the lower middle for an even count).

    Without torch figures, the round with the median pipelined flax examples/s.
    """

    def key(r: dict) -> float:
        if r["ratio"] is not None:
            return r["ratio"]
        return r["flax"]["pipelined_examples_per_s"]

    return sorted(rounds, key=key)[(len(rounds) - 1) // 2]


def _round_summary(r: dict) -> dict:
    return {
        "flax_examples_per_s": r["flax"]["pipelined_examples_per_s"],
        "torch_examples_per_s": (r["torch"] or {}).get("examples_per_s"),
        "ratio": r["ratio"],
    }


def _compare_torch(config, torch_model: str | None, differences: list[str], options) -> dict:
    if torch_model is None:
        known = ", ".join(f"{m} on {d}" for m, d in TORCH_COUNTERPARTS)
        reason = (
            f"no PyTorch counterpart of model {config.model.name!r} on {config.dataset!r} in "
            f"torch_ref.py (it has {known}); comparison skipped"
        )
        if config.model.name.startswith("lenet") and config.dataset == "fashion_mnist":
            reason += (
                "; d2l_lenet (sigmoid, average pooling) is a different network: against it, "
                "--config.model.name=lenet_d2l compares like with like"
            )
        return {"skipped": reason}
    torch = run_torch_ref(
        config,
        torch_model,
        steps=options["warmup"] + options["steps"],
        script=options["torch_ref"],
        threads=options["torch_threads"],
    )
    version = torch.get("framework", "").removeprefix("pytorch ")
    return {**torch, "torch_version": version, "differences": differences}


def format_table(result: dict) -> str:
    """The figures as aligned `name  value` lines."""
    rows = _setup_rows(result) + _step_rows(result["flax"])
    rows += _torch_rows(result) + _round_rows(result.get("rounds"))
    rows += _target_rows(result.get("time_to_target"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _setup_rows(result: dict) -> list[tuple[str, str]]:
    machine, flax = result["machine"], result["flax"]
    devices = (
        f"{flax['num_devices']} x {machine['device_kind']} ({machine['backend']}, "
        f"{flax['strategy']}); {machine['cpu_count']} CPUs, load {machine['load_average_1m']}"
    )
    optimizer = f"{result['optimizer']} lr {result['learning_rate']:g}"
    rows = [
        ("config", " ".join([result["config"], *result["overrides"]])),
        ("model / dataset", f"{result['model']} / {result['dataset']}"),
        ("batch / optimizer", f"{result['batch_size']} / {optimizer}"),
        ("devices", devices),
        ("versions", f"jax {machine['jax_version']}, flax {machine['flax_version']}"),
    ]
    load, cpus = machine["load_average_1m"], machine["cpus_usable"] or machine["cpu_count"]
    if load is not None and cpus and load > 0.5 * cpus:
        busy = f"load {load} on {cpus} CPUs when started: other work shares the CPUs, so "
        rows.append(("WARNING", busy + "timings are noisy (multi-threaded torch especially)"))
    return rows


def _step_rows(flax: dict) -> list[tuple[str, str]]:
    step, prep = flax["step_ms"], flax["batch_prep_ms"]
    spread = f"p10-p90 {step['p10']:.2f}-{step['p90']:.2f}  IQR {step['iqr']:.2f}"
    counts = f"{flax['steps']} steps after {flax['warmup']} warmup"
    pipelined = f"{flax['pipelined_ms_per_step']:.2f} ms/step, as the training loop runs"
    rows = [
        ("compile", f"{flax['compile_s']:.2f} s (first step call until ready)"),
        ("step, blocked", f"median {step['median']:.2f} ms  {spread}  ({counts})"),
        ("batch gather+put", f"median {prep['median']:.2f} ms (not in the blocked step)"),
        ("blocked ex/s", f"{flax['blocked_examples_per_s']:,.0f} (batch / median step)"),
        ("pipelined ex/s", f"{flax['pipelined_examples_per_s']:,.0f} ({pipelined})"),
    ]
    if flax["compiles_while_timing"]:
        count = flax["compiles_while_timing"]
        rows.append(("WARNING", f"{count} XLA compilations while timing: figures include them"))
    return rows


def _torch_rows(result: dict) -> list[tuple[str, str]]:
    torch = result.get("torch")
    if torch is None:
        return []
    if "skipped" in torch:
        return [("torch", torch["skipped"])]
    run = f"{torch['model']}, {torch['steps']} steps, {torch['threads']} threads"
    rows = [
        ("torch ex/s", f"{torch['examples_per_s']:,.0f} ({run}, {torch['framework']})"),
        ("ratio flax/torch", f"{result['ratio_flax_over_torch']:.2f}x (pipelined flax ex/s)"),
    ]
    if torch["differences"]:
        rows.append(("torch differs in", "; ".join(torch["differences"])))
    return rows


def _round_rows(rounds: list[dict] | None) -> list[tuple[str, str]]:
    if not rounds:
        return []
    if rounds[0]["ratio"] is None:
        speeds = ", ".join(f"{r['flax_examples_per_s']:,.0f}" for r in rounds)
        return [("rounds", f"{len(rounds)}: pipelined flax ex/s {speeds}; the median shown")]
    ratios = ", ".join(f"{r['ratio']:.2f}" for r in rounds)
    return [("rounds", f"{len(rounds)}, flax then torch each: ratios {ratios}; the median shown")]


def _target_rows(ttt: dict | None) -> list[tuple[str, str]]:
    if ttt is None:
        return []
    run = (
        f"{ttt['epochs']} epochs: wall {ttt['wall_s']:.1f} s (training {ttt['train_s']:.1f} s), "
        f"final test acc {ttt['final_test_accuracy']:.4f}"
    )
    rows = [("full run", run)]
    for target, hit in ttt["targets"].items():
        value = "not reached"
        if hit:
            value = (
                f"epoch {hit['epoch']}, after {hit['train_seconds']:.1f} s of training "
                f"(test acc {hit['test_accuracy']:.4f})"
            )
        rows.append((f"test acc >= {target}", value))
    return rows


def _parse_targets(text: str) -> list[float]:
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
        "config": config_flags.DEFINE_config_file(
            "config", None, "Config file, optionally FILE:arg.", lock_config=True
        ),
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
            "torch_ref", str(DEFAULT_TORCH_REF), "Path of the PyTorch reference script."
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
        config = cli.config_or_error(flag_holders["config"])
        overrides = config_flags.get_override_values(config_flag)
        options |= {
            "targets": _parse_targets(options["targets"]),
            "config_spec": config_flags.get_config_filename(config_flag),
            "overrides": [f"--config.{k}={v}" for k, v in overrides.items()],
        }
        result = run_benchmark(config, options)
    print(format_table(result))
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
