"""TensorBoard event files in `workdir/tensorboard/`, mirroring the rows of metrics.jsonl.

`tensorboard --logdir runs/` then compares runs side by side. A resumed run hides the
events an interrupted run wrote after its checkpoint (TensorBoard's purge step), as
`MetricsLog` drops those rows, so curves do not fold back on themselves.
"""

import glob
import os
import struct
import time
from collections.abc import Mapping

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2, summary_pb2

SUBDIR = "tensorboard"


class TensorBoardWriter:
    """Scalars tagged `split/name` ("train/loss", "test/accuracy"); a no-op when not enabled.

    Pass `enabled=jax.process_index() == 0` so only one process of a multi-host run writes,
    and `resume_step` (the restored step, 0 for a fresh run) like `MetricsLog`;
    `member_labels` name a population's curves (a sweep's members), else their indices.

    Events are written synchronously with tensorboardX's `EventsWriter`: its
    `SummaryWriter` queues them for a background thread, and its `flush` does not wait
    for that queue, so an epoch's scalars could lag by `flush_secs`. A few scalars per
    epoch cost nothing to write in line.
    """

    def __init__(
        self,
        workdir: str,
        *,
        enabled: bool = True,
        resume_step: int = 0,
        member_labels: list[str] | None = None,
    ):
        self.logdir = os.path.join(workdir, SUBDIR)
        self.member_labels = member_labels
        self._events = None
        if enabled:
            os.makedirs(self.logdir, exist_ok=True)
            # The suffix keeps two writers started in the same second (a quick resume)
            # from sharing a file name, and sorts them in start order as TensorBoard reads.
            self._events = EventsWriter(
                os.path.join(self.logdir, "events"), filename_suffix=f".{time.time_ns()}"
            )
            # Steps up to `resume_step` were written by the run that saved the checkpoint;
            # TensorBoard hides older events from `resume_step + 1` on.
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._events.write_event(
                event_pb2.Event(wall_time=time.time(), step=resume_step + 1, session_log=start)
            )

    @property
    def enabled(self) -> bool:
        return self._events is not None

    def write_scalars(self, step: int, split: str, scalars: Mapping[str, float | list]) -> None:
        """Each scalar as `split/name`; a list (a population's `*_per_replica`) as one curve
        per replica, `split/name/r`, or per member of a sweep, `split/name/<its label>`."""
        if self._events is None:
            return
        labels = self.member_labels
        tagged = []
        for name, value in scalars.items():
            if not _numbers(value):  # `members`, PBT's exploits and metric name
                continue
            if isinstance(value, list | tuple):
                tagged += [
                    (f"{split}/{name}/{labels[r] if labels else r}", v) for r, v in enumerate(value)
                ]
            else:
                tagged.append((f"{split}/{name}", value))
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=t, simple_value=float(v)) for t, v in tagged]
        )
        self._events.write_event(
            event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary)
        )

    def flush(self) -> None:
        if self._events is not None:
            self._events.flush()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    def __enter__(self) -> "TensorBoardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _numbers(value) -> bool:
    """A number, or a list of numbers (one per replica): what TensorBoard draws."""
    values = value if isinstance(value, list | tuple) else [value]
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """The scalars TensorBoard would show from `logdir`: tag -> [(step, value)], file order.

    Reads the TFRecord framing directly, so tests and notebooks need no TensorBoard
    install. As in TensorBoard, a session start at step S drops earlier events at >= S.
    """
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for record in _records(path):
            event = event_pb2.Event.FromString(record)
            if event.session_log.status == event_pb2.SessionLog.START:
                scalars = {
                    tag: [(s, v) for s, v in points if s < event.step]
                    for tag, points in scalars.items()
                }
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def _records(path: str):
    """The payloads of a TFRecord file: length (u64), its CRC, payload, payload CRC."""
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            yield f.read(length)
            f.read(4)
