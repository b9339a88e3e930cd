"""Whole `train` processes against whole torch_ref.py processes, alternating, several rounds.

  .venv/bin/python scripts/whole_run.py --config configs/fashion_d2l.py --epochs 4 --rounds 3
  .venv/bin/python scripts/whole_run.py --config configs/cifar10.py --epochs 2 --rounds 3 \\
      -- --config.data_dir=$(.venv/bin/python scripts/prepare_cifar10.py)

Reports each run's wall time, the steady-state seconds per epoch (wall(N) - wall(1)) /
(N - 1), the torch/lenet_jax ratios (above 1: lenet_jax is faster) and the timeline of a
1-epoch run. torch runs with `--torch_python` (default .venv-torch/bin/python, made by
scripts/setup_torch.sh); `--notorch` times lenet_jax alone. Arguments after `--` are
passed to `train` (and `--config.data_dir` also to torch_ref.py).
"""

import ast
import json
import os
import sys
from pathlib import Path

from absl import app, flags

from lenet_jax import cli
from lenet_jax.bench import whole_run
from lenet_jax.config import load_config_file

REPO = Path(__file__).resolve().parents[1]
_CONFIG = flags.DEFINE_string("config", None, "Config file, optionally FILE:arg.", required=True)
_EPOCHS = flags.DEFINE_integer("epochs", 4, "N: epochs of the longer run (the shorter has 1).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds of (lenet_jax 1, N; torch 1, N).")
_PYTHON = flags.DEFINE_string("python", sys.executable, "The interpreter that runs lenet_jax.")
_TORCH = flags.DEFINE_bool("torch", True, "Also time torch_ref.py.")
_TORCH_PYTHON = flags.DEFINE_string(
    "torch_python", str(REPO / ".venv-torch" / "bin" / "python"), "Interpreter with torch."
)
_JSON = flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")


def apply_overrides(config, overrides: list[str]):
    """`--config.a.b=v` arguments applied to `config` (values as Python literals)."""
    for override in overrides:
        path, _, text = override.removeprefix("--config.").partition("=")
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        node[leaf] = value
    return config


def main(argv: list[str]) -> None:
    overrides = argv[1:]
    with cli.user_errors_as_one_line():
        config = apply_overrides(load_config_file(_CONFIG.value), overrides)
        summary = whole_run.compare(
            config,
            _CONFIG.value,
            overrides,
            epochs=_EPOCHS.value,
            rounds=_ROUNDS.value,
            python=_PYTHON.value,
            torch_python=_TORCH_PYTHON.value if _TORCH.value else None,
        )
    print(whole_run.format_summary(summary))
    if _JSON.value:
        Path(_JSON.value).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "flax_1_timeline"}), flush=True)


if __name__ == "__main__":
    os.chdir(REPO)
    app.run(main)
