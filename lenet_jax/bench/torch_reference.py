"""The eager PyTorch reference, `../shared/bench/torch_ref.py`: which of its models matches a
config, how the two recipes differ, and running it for a number of steps."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import ml_collections

from lenet_jax.errors import UserError

# Beside a source checkout: <repo>/../shared/bench/torch_ref.py.
DEFAULT_TORCH_REF = Path(__file__).resolve().parents[3] / "shared" / "bench" / "torch_ref.py"
TORCH_PIN = "torch==2.13.0"
# (lenet_jax model, dataset) -> torch_ref.py model, and the optimizer torch_ref uses for it.
TORCH_COUNTERPARTS = {
    ("lenet_d2l", "fashion_mnist"): ("d2l_lenet", "sgd"),
    ("cifar_cnn", "cifar10"): ("cifar_cnn", "adam"),
}


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
    if config.model.get("dropout_rate"):
        differences.append(f"dropout {config.model.dropout_rate} (torch_ref: none)")
    if config.label_smoothing:
        differences.append(f"label_smoothing {config.label_smoothing} (torch_ref: 0)")
    augment = config.augment
    if augment.crop_padding or augment.flip or augment.cutout_size:
        differences.append("on-device augmentation (torch_ref: none)")
    if config.dataset == "cifar10" and not config.data_dir:
        differences.append("torch_ref trains on random CIFAR-shaped images (no data_dir)")
    return torch_model, differences


def no_counterpart_reason(config: ml_collections.ConfigDict) -> str:
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
    return reason


def check_torch_ref(script: str | os.PathLike, python: str = sys.executable) -> None:
    """The comparison's prerequisites: torch_ref.py exists and torch imports."""
    if not os.path.isfile(script):
        raise UserError(f"--torch_ref: no torch reference script at {script}")
    if python == sys.executable:
        found = importlib.util.find_spec("torch") is not None
    else:
        found = subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0
    if not found:
        raise UserError(
            f"--compare-torch: torch is not importable by {python}; "
            f"{Path(python).parent / 'pip'} install {TORCH_PIN} "
            "(a CPU build on this machine's disk)"
        )


def torch_ref_env(config: ml_collections.ConfigDict) -> dict:
    """The environment that points torch_ref.py at the config's data."""
    env = dict(os.environ)
    if config.dataset == "cifar10":
        env["CIFAR_DIR"] = config.data_dir
    elif config.data_dir:
        env["FASHION_DIR"] = config.data_dir
    return env


def run_torch_ref(
    config: ml_collections.ConfigDict,
    torch_model: str,
    *,
    steps: int,
    script: str | os.PathLike = DEFAULT_TORCH_REF,
    threads: int = 0,
    python: str = sys.executable,
) -> dict:
    """Runs torch_ref.py for `steps` steps (one epoch at most); returns its JSON line."""
    command = [
        python,
        str(script),
        torch_model,
        "--epochs=1",
        f"--batch={config.batch_size}",
        f"--lr={config.optimizer.learning_rate}",
        f"--max-steps={steps}",
        f"--threads={threads}",
    ]
    done = subprocess.run(
        command, env=torch_ref_env(config), capture_output=True, text=True, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise UserError(f"{' '.join(command)} failed (exit {done.returncode}): {tail}")
    return {"command": command, **json.loads(lines[-1])}
