"""`python -m lenet_jax.evaluate --workdir DIR [--checkpoint latest|best|STEP]`.

Restores a checkpoint and the run's config, evaluates the test split and prints one JSON
line (accuracy, loss, per-class accuracy, confusion matrix); also writes DIR/eval.json
and the plots in DIR/plots/.
"""

import json
import os

from absl import app, flags, logging

from lenet_jax import cli, plots
from lenet_jax.inference import evaluation_report, load_run, predict_split

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "latest, best, or a step number.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.ERROR)  # orbax warns that read-only is read-only
    with cli.user_errors_as_one_line():
        run = load_run(_WORKDIR.value, _CHECKPOINT.value)
        logits, labels = predict_split(run)
        report = evaluation_report(run, logits, labels)
        report["plots"] = plots.write_run_plots(_WORKDIR.value, run, logits)
    with open(os.path.join(_WORKDIR.value, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(main, flags_parser=cli.parse_flags)
