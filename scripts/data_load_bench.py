"""How long `load_dataset` takes for Debian's Fashion-MNIST: a cold decoded-data cache (the
IDX files read, checked and decoded), then warm loads from the cache.

  .venv/bin/python scripts/data_load_bench.py [--rounds 5]

Prints one JSON line: the cold load and the median warm load in seconds. The README's
Performance section holds the figures; the suite only checks what is loaded.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

from lenet_jax import data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="warm loads to time")
    parser.add_argument("--dataset", default="fashion_mnist")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lenet_jax_load_bench_") as cache:
        os.environ["LENET_JAX_CACHE"] = cache  # a cold cache of its own, removed after
        started = time.perf_counter()
        data.load_dataset(args.dataset)
        cold = time.perf_counter() - started
        warm = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            data.load_dataset(args.dataset)
            warm.append(time.perf_counter() - started)
    result = {"dataset": args.dataset, "cold_s": round(cold, 3)}
    result["warm_median_s"] = round(statistics.median(warm), 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
