"""SIGTERM/SIGINT become a request to stop after the current step, not a lost run."""

import signal
import threading


class PreemptionGuard:
    """While active, the first SIGTERM or SIGINT sets `stop_requested`; a second one kills.

    Handlers can only be installed from the main thread; elsewhere the guard is inert.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.stop_requested = False
        self.signal_number: int | None = None
        self._previous = {}

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
        if self.stop_requested:  # a second signal: the user really means it
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
        self.stop_requested = True
        self.signal_number = signum
        print(
            f"received {signal.Signals(signum).name}: stopping after the current step", flush=True
        )
