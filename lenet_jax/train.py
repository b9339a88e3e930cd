"""Command line: `python -m lenet_jax.train --config configs/fashion.py --workdir runs/fashion`.

Flags only; the loop is `train_and_evaluate` (importable from here, as in the flax
examples). Rerunning the same command on the same workdir resumes from the latest
checkpoint. The plots are drawn here, after training returns (unless `config.plots` is
False), so importing this module imports no plotting library.
"""

import os
import sys

from absl import app, flags, logging

from lenet_jax import cli
from lenet_jax.training import distributed
from lenet_jax.training.loop import Preempted, TrainResult, train_and_evaluate

__all__ = ["Preempted", "TrainResult", "train_and_evaluate"]

_CONFIG = cli.define_config_flag()
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
    # orbax logs every save at INFO, and a failed save from each of its threads at ERROR:
    # the trainer reports such failures itself, in one line.
    logging.set_verbosity(logging.FATAL)
    with cli.user_errors_as_one_line(exit=exit_now):
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
        config = cli.config_or_error(_CONFIG)
        try:
            result = train_and_evaluate(config, _WORKDIR.value)
        except Preempted as e:  # a signal (exit 143) or the time budget (exit 0)
            print(f"{e}. {e.hint}", flush=True)
            exit_now(e.exit_code)
    if distributed.is_main_process():
        if config.plots:
            from lenet_jax.report import page, plots  # matplotlib, once training is done

            plots.write_run_plots(_WORKDIR.value, result, result.test_predictions)
            page.write_report(_WORKDIR.value)
        test, ema = result.test, result.test_ema
        print(
            f"final test accuracy: {test['accuracy']:.4f} (loss {test['loss']:.4f})"
            + (f", EMA {ema['accuracy']:.4f}" if ema else "")
            + (f", ensemble {test['ensemble_accuracy']:.4f}" if "ensemble_accuracy" in test else "")
            + f"; outputs in {_WORKDIR.value}",
            flush=True,
        )
    exit_now(0)


def exit_now(code: int) -> None:
    """Ends a single-process run at once: everything is written and closed by now, and the
    interpreter's teardown of JAX's runtime and orbax's threads would only add to the wall
    time (and, after an interrupted save, print their noise). A multi-host run exits
    normally, so `jax.distributed` shuts down in step."""
    sys.stdout.flush()
    sys.stderr.flush()
    if distributed.is_single_process():
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    cli.run(main)
