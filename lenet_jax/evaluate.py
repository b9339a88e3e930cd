"""`python -m lenet_jax.evaluate --workdir DIR [--checkpoint latest|best|STEP]`.

Restores a checkpoint and the run's config, evaluates the test split and prints one JSON
line (every metric training reports, per-class accuracy, confusion matrix); also writes
DIR/eval.json and the plots in DIR/plots/.
"""

import json

from absl import app, flags, logging

from lenet_jax import cli
from lenet_jax.report.evaluation import evaluate_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "latest, best, or a step number.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.ERROR)  # orbax warns that read-only is read-only
    with cli.user_errors_as_one_line():
        report = evaluate_workdir(_WORKDIR.value, _CHECKPOINT.value)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(main, flags_parser=cli.parse_flags)
