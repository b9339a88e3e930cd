"""Multi-host start-up: `jax.distributed.initialize` from flags or JAX's own environment."""

import os
import sys

import jax

from lenet_jax.errors import UserError


def initialize(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Joins a multi-process run when asked to; a no-op for a plain single-process run.

    With no flags, JAX's environment-based auto-detection is honoured when the environment
    names a coordinator (JAX_COORDINATOR_ADDRESS) or a cluster JAX knows (SLURM, Open MPI).
    """
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise UserError(
            "--coordinator_address, --num_processes and --process_id go together; "
            "give all three (or none, to use JAX's environment auto-detection)"
        )
    if all(given):
        if not 0 <= process_id < num_processes:
            raise UserError(f"--process_id={process_id}: expected 0 to {num_processes - 1}")
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    elif _cluster_environment():
        jax.distributed.initialize()


def _cluster_environment() -> bool:
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    for count in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        if int(os.environ.get(count, "1") or 1) > 1:
            return True
    return False


def is_single_process() -> bool:
    return jax.process_count() == 1


def is_main_process() -> bool:
    """Only process 0 writes metrics, plots and logs."""
    return jax.process_index() == 0


def log(*args) -> None:
    """Progress lines: from process 0 only, so a multi-host run prints each line once."""
    if is_main_process():
        print(*args, flush=True)


def warn(line: str) -> None:
    """A `warning:` line on stderr, from process 0 only."""
    if is_main_process():
        print(line, file=sys.stderr, flush=True)
