"""Machine facts a figure needs beside it, and the timing helpers every measurement uses."""

import contextlib
import importlib.metadata
import os
import platform
from collections.abc import Iterator, Sequence

import jax
import numpy as np

_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


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
        facts[f"{package}_version"] = version(package)
    return facts


def version(package: str) -> str | None:
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
