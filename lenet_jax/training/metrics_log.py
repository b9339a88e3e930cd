"""`workdir/metrics.jsonl`: one JSON object per line, appended as training goes."""

import json
import os


class MetricsLog:
    """Appends rows; on resume, first drops rows newer than the restored step.

    Rows written after the last checkpoint are produced again, identically, by the
    resumed run, so keeping them would duplicate them.
    """

    def __init__(self, path: str, *, resume_step: int, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        if enabled:
            self._truncate_after(resume_step)

    def _truncate_after(self, step: int) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path) as f:
            rows = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(rows)
        os.replace(tmp, self.path)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def read_rows(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
