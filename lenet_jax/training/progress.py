"""Progress within one epoch: a redrawn tqdm bar on a terminal, plain lines in a log file.

The loop fetches the loss from the device only on logging steps (`Progress.due`; a fetch
is a sync that would stall the pipeline of dispatched steps), so `update` takes
`loss=None` on the others and the reporter shows the last loss it was given.

Speed is measured from the first `update` on, so the first step's compilation does not
drag down the examples/s and inflate the ETA.
"""

import sys
import time
from typing import TextIO

import tqdm


class Progress:
    """Reports steps, examples/s, loss and ETA for epoch `epoch` (1-based) of `num_epochs`.

    `update(n, loss)` says `n` steps of this epoch are done (1..total). `initial` is how
    many were done before this process started (a resumed epoch). Usable as a context
    manager, which closes it.
    """

    def __init__(
        self,
        total_steps_in_epoch: int,
        epoch: int,
        num_epochs: int,
        batch_size: int,
        *,
        every: int = 100,
        stream: TextIO | None = None,
        initial: int = 0,
    ):
        self.total, self.epoch, self.num_epochs = total_steps_in_epoch, epoch, num_epochs
        self.batch_size, self.every = batch_size, max(1, every)
        self.stream = stream if stream is not None else sys.stdout
        self.loss: float | None = None
        self._first: tuple[int, float] | None = None  # (step, time) of the first update
        self._bar = self._make_bar(initial) if _is_tty(self.stream) else None

    def _make_bar(self, initial: int) -> tqdm.tqdm:
        return tqdm.tqdm(
            total=self.total,
            initial=initial,
            file=self.stream,
            leave=False,
            dynamic_ncols=True,
            unit="step",
            desc=f"epoch {self.epoch}/{self.num_epochs}",
            bar_format="{desc} {bar} {n_fmt}/{total_fmt} steps{postfix}",  # postfix: ", ..."
        )

    def update(self, step_in_epoch: int, loss: float | None = None) -> None:
        now = time.perf_counter()
        if loss is not None:
            self.loss = float(loss)
        if self._first is None:
            self._first = (step_in_epoch, now)
        if self._bar is not None:
            self._bar.set_postfix_str(" ".join(self._stats(step_in_epoch, now)), refresh=False)
            self._bar.update(step_in_epoch - self._bar.n)
        elif self.due(step_in_epoch):
            print(self.line(step_in_epoch, now), file=self.stream, flush=True)

    def due(self, step_in_epoch: int) -> bool:
        """Whether step `step_in_epoch` is a logging step: fetch the loss for it then."""
        return step_in_epoch % self.every == 0

    def line(self, step_in_epoch: int, now: float | None = None) -> str:
        """A plain line: `epoch 2/10 step 300/468 loss 0.3123 5,210 ex/s eta 32s`."""
        now = time.perf_counter() if now is None else now
        head = f"epoch {self.epoch}/{self.num_epochs} step {step_in_epoch}/{self.total}"
        return " ".join([head, *self._stats(step_in_epoch, now)])

    def _stats(self, step: int, now: float) -> list[str]:
        """Loss, speed and ETA, each left out until it is known."""
        stats = [f"loss {self.loss:.4f}"] if self.loss is not None else []
        rate = self._rate(step, now)
        if rate is not None:
            eta = format_seconds((self.total - step) / rate)
            stats += [f"{rate * self.batch_size:,.0f} ex/s", f"eta {eta}"]
        return stats

    def _rate(self, step: int, now: float) -> float | None:
        """Steps per second since the first update; None until there is an interval."""
        if self._first is None or step <= self._first[0] or now <= self._first[1]:
            return None
        return (step - self._first[0]) / (now - self._first[1])

    def write(self, text: str) -> None:
        """Prints a line without breaking the bar (tqdm redraws it below the line)."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def format_seconds(seconds: float) -> str:
    """`32s`, `4m05s` or `1h02m`: short enough for a progress line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
