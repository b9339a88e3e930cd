"""Where a run starts: the newest good checkpoint (its state, the epoch's running totals,
the rows so far, the training seconds spent), else a fresh state, warm-started from
`config.init_from` when it names a run."""

import dataclasses

from lenet_jax.errors import UserError
from lenet_jax.training import checkpointing
from lenet_jax.training import workdir as workdir_lib
from lenet_jax.training.distributed import log
from lenet_jax.training.metrics import Totals
from lenet_jax.training.run import Run
from lenet_jax.training.warm_start import warm_start


@dataclasses.dataclass(frozen=True)
class Restored:
    """Where a run starts: its state, the epoch's running totals, the rows written so far
    (None for a fresh run), the step and the seconds of training already spent."""

    state: object
    totals: Totals
    history: list | None
    step: int
    train_seconds: float


def restore_or_init(ckpts: checkpointing.Checkpoints, run: Run, workdir: str) -> Restored:
    """The newest good checkpoint, else the fresh state (warm-started from
    `config.init_from` when it names a run)."""
    try:  # a fresh run does not trace the state's shapes: init traces them anyway
        restored = ckpts.restore_latest_good(run.abstract_state()) if ckpts.steps() else None
    except checkpointing.IncompatibleCheckpoint as e:
        changes = workdir_lib.config_changes(workdir, run.config)
        hint = f" (config changes: {'; '.join(changes)})" if changes else ""
        raise UserError(f"{e}{hint}") from None
    if restored is None:
        state = run.init_state()
        if run.config.init_from:
            state = warm_start(run, state)
        return Restored(state, Totals(), None, 0, 0.0)
    state, loop_json, step = restored
    log(f"resuming {workdir} from step {step}")
    totals = Totals.from_json(loop_json.get("totals", loop_json), batch_size=run.config.batch_size)
    seconds = float(loop_json.get("train_seconds", 0.0))
    return Restored(state, totals, loop_json.get("history"), step, seconds)
