"""Runs the train CLI on a small tmpfs inside a private mount namespace (`unshare -m`, root):
train, fill the disk, train on (it must fail in one line), free the space, train on (it must
resume from the last good checkpoint). Writes what happened as JSON for the test to check.

  unshare -m python tests/full_disk_driver.py DATA_DIR OUT.json
"""

import json
import os
import subprocess
import sys
import tempfile

from conftest import tiny_train_command

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(workdir: str, data_dir: str, epochs: int) -> dict:
    cmd = tiny_train_command(
        workdir,
        data_dir,
        "--config.parallelism=single",
        f"--config.num_epochs={epochs}",
        "--config.plots=false",
    )
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def fill(mount: str, leave: int) -> str:
    """A file that leaves `leave` bytes free on the mount."""
    stat = os.statvfs(mount)
    path = os.path.join(mount, "filler")
    with open(path, "wb") as f:
        f.truncate(0)
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return path


def main(data_dir: str, out: str) -> None:
    mount = tempfile.mkdtemp(prefix="lenet_jax_full_disk_")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mount], check=True)
    try:
        report = run_on(os.path.join(mount, "w"), mount, data_dir)
    finally:  # the mount dies with the namespace; its empty mount point would not
        subprocess.run(["umount", mount], check=False)
        os.rmdir(mount)
    with open(out, "w") as f:
        json.dump(report, f)


def run_on(workdir: str, mount: str, data_dir: str) -> dict:
    report = {"first": train(workdir, data_dir, 1)}
    report["checkpoints_before"] = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    filler = fill(mount, leave=256 * 1024)  # room for rows and the config, not a checkpoint
    report["full"] = train(workdir, data_dir, 3)
    os.remove(filler)
    report["after"] = train(workdir, data_dir, 3)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        report["rows"] = [json.loads(line) for line in f]
    return report


if __name__ == "__main__":
    main(*sys.argv[1:])
