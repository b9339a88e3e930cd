"""One writer that fans each epoch's rows out to metrics.jsonl, TensorBoard and the console.

The loop calls `writer.write(step, epoch, rows)` once per epoch, with `rows` holding one
dict of scalars per split ("train": loss, accuracy, ..., learning_rate, examples_per_sec,
epoch_seconds; "test": the metrics). Every sink gets the same rows, so a new metric or
field shows up everywhere at once.
"""

import os
from collections.abc import Mapping, Sequence

from lenet_jax.training.metrics_log import METRICS_FILE, MetricsLog
from lenet_jax.training.tensorboard import TensorBoardWriter

Rows = Mapping[str, Mapping[str, float]]  # split -> scalars


class JsonlWriter:
    """`workdir/metrics.jsonl`: one line per split per epoch."""

    def __init__(self, log: MetricsLog):
        self.log = log

    def write(self, step: int, epoch: int, rows: Rows) -> None:
        for split, scalars in rows.items():
            self.log.write({"step": step, "epoch": epoch, "split": split, **scalars})

    def rows(self) -> list[dict]:
        return list(self.log.rows)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardSink:
    """TensorBoard scalars tagged `split/name`, flushed at each epoch."""

    def __init__(self, tensorboard: TensorBoardWriter):
        self.tensorboard = tensorboard

    def write(self, step: int, epoch: int, rows: Rows) -> None:
        for split, scalars in rows.items():
            self.tensorboard.write_scalars(step, split, scalars)
        self.tensorboard.flush()

    def flush(self) -> None:
        self.tensorboard.flush()

    def close(self) -> None:
        self.tensorboard.close()


class ConsoleWriter:
    """The epoch line: `epoch 3/12  step 1404  train loss ... acc ...  test loss ... acc ...`."""

    def __init__(self, num_epochs: int, print_fn=print):
        self.num_epochs, self.print = num_epochs, print_fn

    def write(self, step: int, epoch: int, rows: Rows) -> None:
        parts = [f"epoch {epoch}/{self.num_epochs}", f"step {step}"]
        for split, scalars in rows.items():
            if "loss" in scalars:  # PBT's row has none: its moves get lines of their own
                parts.append(f"{split} loss {scalars['loss']:.4f} acc {scalars['accuracy']:.4f}")
        train = rows.get("train", {})
        if "examples_per_sec" in train:
            parts.append(f"{train['examples_per_sec']:,.0f} ex/s")
        if "epoch_seconds" in train:
            parts.append(f"{train['epoch_seconds']:.1f} s")
        self.print("  ".join(parts), flush=True)
        for split, scalars in rows.items():
            for exploit in scalars.get("exploits", ()):  # population-based training's
                values = ", ".join(
                    f"{k.rpartition('.')[2]}={v:g}" for k, v in exploit["values"].items()
                )
                self.print(
                    f"  {split}: member {exploit['member']} copied member {exploit['copied']}"
                    f" ({values})",
                    flush=True,
                )

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MultiWriter:
    """Writes to each of `writers`; a context manager that closes them all."""

    def __init__(self, writers: Sequence):
        self.writers = list(writers)

    def write(self, step: int, epoch: int, rows: Rows) -> None:
        for writer in self.writers:
            writer.write(step, epoch, rows)

    def rows(self) -> list[dict]:
        """The rows metrics.jsonl holds as resumed ([] where this process writes none)."""
        return next((w.rows() for w in self.writers if hasattr(w, "rows")), [])

    def flush(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def __enter__(self) -> "MultiWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_writer(
    workdir: str,
    *,
    resume_step: int,
    num_epochs: int,
    main: bool,
    history: list[dict] | None = None,
    member_labels: list[str] | None = None,
) -> MultiWriter:
    """The run's writer; on processes other than 0 it writes nothing. `history`, the rows
    the restored checkpoint carries, is what metrics.jsonl is rebuilt from; `member_labels`
    name a sweep's members' TensorBoard curves."""
    if not main:
        return MultiWriter([])
    log = MetricsLog(os.path.join(workdir, METRICS_FILE), resume_step=resume_step, history=history)
    tensorboard = TensorBoardWriter(workdir, resume_step=resume_step, member_labels=member_labels)
    return MultiWriter([JsonlWriter(log), TensorBoardSink(tensorboard), ConsoleWriter(num_epochs)])
