"""The benchmark's figures as text: rounds, ratios and the aligned table."""

from collections.abc import Sequence


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


def round_summary(r: dict) -> dict:
    return {
        "flax_examples_per_s": r["flax"]["pipelined_examples_per_s"],
        "torch_examples_per_s": (r["torch"] or {}).get("examples_per_s"),
        "ratio": r["ratio"],
    }


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
