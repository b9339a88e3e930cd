"""SIGTERM/SIGINT, or a spent time budget, become a request to stop at a step boundary.

On several processes a signal may reach one of them, or all at slightly different times;
they must still stop at the same step, or the others would wait for it in the next
collective forever. `agreed_stop()` is asked at the same steps by every process (the
loop's logging steps and each epoch's end) and is true on all of them once any of them
was signalled (`multihost_utils.process_allgather` of each process's flag).
"""

import signal
import threading
import time

import jax
import numpy as np


class Preempted(Exception):
    """Raised after a SIGTERM/SIGINT once the current step is saved."""

    exit_code = 143  # 128 + SIGTERM, as a killed process's
    hint = "Rerun the same command to resume."


class TimeBudgetReached(Preempted):
    """Raised once `config.max_train_seconds` is spent and the current step is saved: the
    run did what it was asked, so the command exits 0."""

    exit_code = 0
    hint = "Rerun with a larger --config.max_train_seconds to continue."


class TimeBudget:
    """`config.max_train_seconds` of training, summed over reruns: the seconds spent before
    this process started (from the checkpoint) count against it."""

    def __init__(self, budget: float, prior_seconds: float):
        self.budget, self.prior_seconds = budget, prior_seconds
        self.started = time.monotonic()
        # When the guard asks for a stop (None: no budget).
        self.deadline = self.started + budget - prior_seconds if budget else None

    def seconds(self) -> float:
        """Training seconds so far, earlier runs included."""
        return self.prior_seconds + time.monotonic() - self.started

    def check_left(self, step: int) -> None:
        """Raises TimeBudgetReached when an earlier run spent the whole budget."""
        if self.budget and self.prior_seconds >= self.budget:
            raise TimeBudgetReached(
                f"time budget config.max_train_seconds={self.budget:g} was already spent "
                f"({self.prior_seconds:.1f} s of training up to step {step})"
            )

    def spent(self, what: str) -> "TimeBudgetReached":
        """The stop once the budget runs out mid-run; `what` says what was saved."""
        return TimeBudgetReached(
            f"time budget config.max_train_seconds={self.budget:g} spent "
            f"({self.seconds():.1f} s of training); {what}"
        )


class PreemptionGuard:
    """While active, the first SIGTERM or SIGINT sets `stop_requested`; a second one kills.

    Handlers can only be installed from the main thread; elsewhere the guard is inert.
    With a `deadline` (`time.monotonic()` seconds: `config.max_train_seconds`), passing it
    requests the stop too.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, deadline: float | None = None):
        self.signalled = False
        self.deadline = deadline
        self.signal_number: int | None = None
        self._previous = {}

    @property
    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    @property
    def stop_requested(self) -> bool:
        return self.signalled or self.out_of_time

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame):
        if self.signalled:  # a second signal: the user really means it
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
        self.signalled = True
        self.signal_number = signum
        print(
            f"received {signal.Signals(signum).name}: stopping at the next step boundary",
            flush=True,
        )

    def agreed_stop(self) -> bool:
        """Whether to stop now: this process's flag, or on several processes, anyone's.

        Every process must call it at the same points of the run.
        """
        if jax.process_count() == 1:
            return self.stop_requested
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray(self.stop_requested, np.int32))
        # `or`, not `=`: a signal handled while the gather ran must not be overwritten by
        # flags gathered before it (it is then agreed on at the next call).
        self.signalled = self.signalled or bool(np.asarray(flags).any())
        return bool(np.asarray(flags).any())
