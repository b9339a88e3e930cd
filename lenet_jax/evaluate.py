"""`python -m lenet_jax.evaluate --workdir DIR [--checkpoint latest|best|STEP] [--weights ema|raw]
[--noplots]`.

Restores a checkpoint and the run's config, evaluates the test split (all of it, or with
`--num_examples=N` the run's own fixed subset of N) and prints one JSON line (every metric
training reports, the examples scored, per-class accuracy, confusion matrix); also writes
DIR/eval.json and (unless `--noplots`) the plots in DIR/plots/, unless a run holds the
workdir. A run with an EMA (`config.ema_decay`) is scored with the EMA's parameters unless
`--weights=raw`; a population (`config.num_replicas`) reports each replica, the mean and
std over them, and the ensemble's accuracy (`ensemble_accuracy`, from averaged
probabilities).
"""

import json

from absl import app, flags, logging

from lenet_jax import cli
from lenet_jax.report.evaluation import evaluate_workdir

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "latest, best, or a step number.")
_WEIGHTS = flags.DEFINE_enum(
    "weights",
    "auto",
    ["auto", "ema", "raw"],
    "The EMA's parameters or the raw ones; auto: the EMA's where the run keeps one.",
)
_NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", 0, "Score the run's fixed subset of this many test examples (0: all)."
)

_PLOTS = flags.DEFINE_bool(
    "plots", True, "Draw DIR/plots/*.png; --noplots writes eval.json alone, sooner."
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.ERROR)  # orbax warns that read-only is read-only
    with cli.user_errors_as_one_line():
        report = evaluate_workdir(
            _WORKDIR.value,
            _CHECKPOINT.value,
            _NUM_EXAMPLES.value,
            weights=_WEIGHTS.value,
            draw_plots=_PLOTS.value,
        )
    print(json.dumps(report), flush=True)


def define_flags() -> None:
    """What only the program adds to the flags defined above: --workdir is required there,
    and `import lenet_jax.evaluate` elsewhere must not make it required for everyone."""
    flags.mark_flag_as_required("workdir")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
