"""Runs the train CLI on a small tmpfs inside a private mount namespace (`unshare -m`, root):
puts a run's first epoch there, fills the disk, trains on (it must fail in one line), frees
the space, trains on (it must resume from the last good checkpoint). Writes what happened as
JSON for the test to check.

  unshare -m python tests/full_disk_driver.py PLAN.json OUT.json

PLAN.json: {"first": a workdir holding the run's first epoch, "mount": an empty directory to
mount the tmpfs on, "workdir": the run's workdir on the tmpfs, "train": the train command on
it}. The first epoch is trained by the test, in its own process: only the two runs the test
is about start here, and this driver imports no JAX.
"""

import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(command: list[str]) -> dict:
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def fill(mount: str, leave: int) -> str:
    """A file that leaves `leave` bytes free on the mount."""
    stat = os.statvfs(mount)
    path = os.path.join(mount, "filler")
    with open(path, "wb") as f:
        f.truncate(0)
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return path


def main(plan_path: str, out: str) -> None:
    with open(plan_path) as f:
        plan = json.load(f)
    mount = plan["mount"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mount], check=True)
    try:
        report = run_on(plan, mount)
    finally:  # the mount dies with the namespace anyway
        subprocess.run(["umount", mount], check=False)
    with open(out, "w") as f:
        json.dump(report, f)


def run_on(plan: dict, mount: str) -> dict:
    command, workdir = plan["train"], plan["workdir"]
    shutil.copytree(plan["first"], workdir)  # as if its first epoch had run here
    report = {"checkpoints_before": sorted(os.listdir(os.path.join(workdir, "checkpoints")))}
    filler = fill(mount, leave=256 * 1024)  # room for rows and the config, not a checkpoint
    report["full"] = train(command)
    os.remove(filler)
    report["after"] = train(command)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        report["rows"] = [json.loads(line) for line in f]
    return report


if __name__ == "__main__":
    main(*sys.argv[1:])
