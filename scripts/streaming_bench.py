"""Steps/s of a TFDS dataset streamed from disk against the same dataset held in memory.

    python scripts/prepare_tfds.py cifar10 --data_dir D \
        --image_folder $(python scripts/prepare_cifar10.py)
    python scripts/streaming_bench.py --tfds_data_dir D [--rounds 3] [--examples 10000]

Runs whole training processes of `configs/cifar10.py` (one epoch), alternating the two
modes each round; the streamed one gets `--config.max_in_memory_mb=1`, so both its splits
are read a batch at a time by grain's readers. Reports each run's train-epoch
examples/s (from metrics.jsonl) and the median ratio streamed / in memory.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def epoch_speed(tfds_data_dir: str, examples: int, streamed: bool, config: str) -> float:
    with tempfile.TemporaryDirectory() as workdir:
        command = [
            sys.executable,
            "-m",
            "lenet_jax.train",
            f"--config={config}",
            f"--workdir={workdir}",
            "--config.dataset=cifar10",
            f"--config.tfds_data_dir={tfds_data_dir}",
            "--config.data_dir=",
            "--config.num_epochs=1",
            f"--config.num_train_examples={examples}",
            "--config.parallelism=single",
        ]
        if streamed:
            command.append("--config.max_in_memory_mb=1")
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return next(r["examples_per_sec"] for r in rows if r["split"] == "train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tfds_data_dir", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--config", default="configs/cifar10.py")
    args = parser.parse_args()
    ratios = []
    for round_index in range(args.rounds):
        held = epoch_speed(args.tfds_data_dir, args.examples, False, args.config)
        streamed = epoch_speed(args.tfds_data_dir, args.examples, True, args.config)
        ratios.append(streamed / held)
        print(
            f"round {round_index + 1}: in memory {held:,.0f} ex/s, streamed {streamed:,.0f} "
            f"ex/s, ratio {ratios[-1]:.3f}",
            flush=True,
        )
    print(
        f"median streamed / in memory: {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
