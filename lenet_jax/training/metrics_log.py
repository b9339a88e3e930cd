"""`workdir/metrics.jsonl`: one JSON object per line, appended as training goes.

A line is appended whole and flushed, but a `kill -9` or a power cut can still leave the
last one cut short: readers skip a cut last line. A resumed run rewrites the file from the
rows its checkpoint carries, so nothing a crash did to the file is kept (a checkpoint from
before those rows existed: the file's own rows up to the restored step, a cut last line
dropped with a warning). A damaged line elsewhere is a `UserError` naming it.
"""

import json
import os
import sys

from lenet_jax import files
from lenet_jax.errors import UserError

METRICS_FILE = "metrics.jsonl"  # in the workdir


def _parse(path: str, lines: list[str]) -> tuple[list[dict], bool]:
    """The rows of `lines`, and whether a cut last line was skipped."""
    rows, cut = [], False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "step" not in row:
                raise ValueError("not a metrics row")
        except ValueError as e:
            if number == len(lines) and not line.endswith("\n"):
                cut = True
                continue
            raise UserError(
                f"{path}: line {number} is not a metrics row ({e}); fix or remove that line"
            ) from None
        rows.append(row)
    return rows, cut


def read_rows(path: str) -> list[dict]:
    """The rows of a metrics.jsonl, skipping a last line cut short by a crash."""
    with open(path) as f:
        return _parse(path, f.readlines())[0]


def workdir_rows(workdir: str) -> list[dict]:
    """The rows of `workdir`'s metrics.jsonl; none before the first is written."""
    path = os.path.join(workdir, METRICS_FILE)
    return read_rows(path) if os.path.exists(path) else []


class MetricsLog:
    """Appends rows; on resume, first drops rows newer than the restored step.

    Rows written after the last checkpoint are produced again, identically, by the
    resumed run, so keeping them would duplicate them.
    """

    def __init__(
        self,
        path: str,
        *,
        resume_step: int,
        history: list[dict] | None = None,
        enabled: bool = True,
    ):
        self.path = path
        self.enabled = enabled
        self.rows: list[dict] = []  # as resumed
        if enabled:
            self._resume(resume_step, history)

    def _resume(self, step: int, history: list[dict] | None) -> None:
        if history is None:
            if not os.path.exists(self.path):
                return
            with open(self.path) as f:
                history, cut = _parse(self.path, f.readlines())
            if cut:
                print(f"warning: {self.path}: dropped its last line, cut short", file=sys.stderr)
        self.rows = [row for row in history if row["step"] <= step]
        with files.atomic_open(self.path) as f:
            f.writelines(json.dumps(row) + "\n" for row in self.rows)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
