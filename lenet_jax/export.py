"""`python -m lenet_jax.export --workdir DIR --member best|K --to NEW`.

Writes one member of a population or sweep (`config.num_replicas`, `config.sweep`) as an
ordinary run in NEW: its config with the member's values filled in, its checkpoint without
the member axis, its own rows. `evaluate`, `predict`, `summary` and `config.init_from` read
it like any run. Prints one JSON line: the member, its values, the step and NEW. `best` is
the best member by the run's last test row and `config.best_metric`.
"""

import json

from absl import app, flags, logging

from lenet_jax import cli
from lenet_jax.report.export import export_member

_WORKDIR = flags.DEFINE_string("workdir", None, "A population's or sweep's workdir.")
_MEMBER = flags.DEFINE_string("member", "best", "best, or a member's index.")
_TO = flags.DEFINE_string("to", None, "The new run's workdir (absent or empty).")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.ERROR)  # orbax warns that read-only is read-only
    with cli.user_errors_as_one_line():
        exported = export_member(_WORKDIR.value, _MEMBER.value, _TO.value)
    print(json.dumps(exported), flush=True)


def define_flags() -> None:
    """--workdir and --to are required by the program, not by `import lenet_jax.export`."""
    flags.mark_flag_as_required("workdir")
    flags.mark_flag_as_required("to")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
