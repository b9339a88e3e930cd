"""`config.profile_steps`: a `jax.profiler` trace of a few steady-state steps.

The trace starts at step `FIRST_STEP` (compilation and the first steps' warm-up are done
by then) and covers `profile_steps` steps, written under `workdir/tensorboard/`, where
TensorBoard's profile plugin looks (`plugins/profile/<run>/*.xplane.pb`): `tensorboard
--logdir DIR/tensorboard` shows it beside the scalars. Only process 0 traces.
"""

import contextlib

import jax

from lenet_jax.training import distributed

FIRST_STEP = 10
STEP_NAME = "train"


class StepProfiler:
    """Starts and stops the trace around global steps `FIRST_STEP..FIRST_STEP+num_steps-1`."""

    def __init__(self, logdir: str | None, num_steps: int):
        self.logdir = logdir if distributed.is_main_process() else None
        self.steps = range(FIRST_STEP, FIRST_STEP + num_steps)
        self.tracing = False
        self.done = False

    @property
    def enabled(self) -> bool:
        return bool(self.logdir) and len(self.steps) > 0 and not self.done

    def before(self, step: int) -> None:
        """Called before global step `step` (0-based) is dispatched."""
        if self.enabled and not self.tracing and step == self.steps.start:
            jax.profiler.start_trace(self.logdir)
            self.tracing = True

    def annotate(self, step: int):
        """Marks step `step`'s dispatch in the trace (TensorBoard's profile plugin groups
        the trace by these steps); nothing while no trace runs."""
        if self.tracing:
            return jax.profiler.StepTraceAnnotation(STEP_NAME, step_num=step)
        return contextlib.nullcontext()

    def after(self, step: int, state) -> None:
        """Called after step `step` is dispatched: the trace ends once its last step ran."""
        if self.tracing and step == self.steps[-1]:
            self.stop(state)

    def stop(self, state=None) -> None:
        if not self.tracing:
            return
        jax.block_until_ready(state)  # the traced steps have run, not only been dispatched
        jax.profiler.stop_trace()
        self.tracing, self.done = False, True
        print(
            f"profiled steps {self.steps.start}..{self.steps[-1]} into {self.logdir} "
            "(tensorboard's profile plugin)",
            flush=True,
        )

    @contextlib.contextmanager
    def around(self, steps: range):
        """Traces a block that runs `steps` at once (a scanned epoch) if it holds the first
        traced step."""
        if self.enabled and self.steps.start in steps:
            jax.profiler.start_trace(self.logdir)
            self.tracing = True
            try:
                yield
            finally:
                self.stop()
        else:
            yield
