"""Command line: `python -m lenet_jax.train --config configs/fashion.py --workdir runs/fashion`.

Flags only; the loop is `trainer.train_and_evaluate`. Rerunning the same command on the
same workdir resumes from the latest checkpoint.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from lenet_jax import cli, distributed, trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    None,
    "Config file, optionally FILE:arg (e.g. configs/fashion.py:smoke).",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: HOST:PORT of process 0's coordinator."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save step at INFO
    with cli.user_errors_as_one_line():
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
        try:
            test = trainer.train_and_evaluate(cli.config_or_error(_CONFIG), _WORKDIR.value)
        except trainer.Preempted as e:
            print(f"{e}. Rerun the same command to resume.", flush=True)
            sys.exit(143)
    if distributed.is_main_process():
        print(
            f"final test accuracy: {test['accuracy']:.4f} (loss {test['loss']:.4f}); "
            f"outputs in {_WORKDIR.value}",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
