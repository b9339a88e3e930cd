"""A command's checks run in this process, its exit code and stderr captured: how the
bad-input tests try many inputs without a process (and an import of JAX) each.

Also a program: `python tests/cli_checks.py CASES.json` runs each case of a JSON list and
prints the results as JSON, for checks that must run in a process of their own (with
root's power to read any file dropped, so permission bits apply as they do for a user).
"""

import contextlib
import io
import json
import sys
from collections.abc import Callable

from absl import flags

from lenet_jax import cli


def in_process(command: Callable[[], int | None]) -> tuple[int, str]:
    """(exit code, stderr) of `command` run as a command runs it: a UserError is one
    `error:` line and exit 2."""
    err = io.StringIO()

    def exit_with(code):
        raise SystemExit(code)

    with contextlib.redirect_stderr(err):
        try:
            with cli.user_errors_as_one_line(exit=exit_with):
                code = command()
        except SystemExit as e:
            return int(e.code or 0), err.getvalue()
    return int(code or 0), err.getvalue()


def train_checks(argv: list[str], *, train: bool = False) -> tuple[int, str]:
    """(exit code, stderr) of `train`'s flag parsing, config checks and run building (no
    compilation, no file written); with `train`, of the whole run."""
    from lenet_jax.training.loop import train_and_evaluate
    from lenet_jax.training.run import build_run

    flag_values, argv = flags.FlagValues(), ["train", *argv]
    config_flag = cli.define_config_flag(flag_values, argv)
    flags.DEFINE_string("workdir", None, "", flag_values=flag_values)

    def command():
        cli.parse_flags(argv, flag_values)
        config = cli.config_or_error(flag_values[config_flag.name])
        if train:
            train_and_evaluate(config, flag_values["workdir"].value)
        else:
            build_run(config)

    return in_process(command)


def run_case(case: dict) -> tuple[int, str]:
    """One case: {"command": "train", "argv": [...], "train": bool}, {"command": "evaluate",
    "workdir": W} or {"command": "predict", "workdir": W, "images": [...]}."""
    if case["command"] == "train":
        return train_checks(case["argv"], train=case.get("train", False))
    if case["command"] == "evaluate":
        from lenet_jax.report.evaluation import evaluate_workdir

        return in_process(lambda: evaluate_workdir(case["workdir"], "latest") and None)
    if case["command"] == "predict":
        from lenet_jax.predict import predict_files
        from lenet_jax.report.inference import load_run

        return in_process(
            lambda: predict_files(load_run(case["workdir"], "latest"), case["images"])
        )
    raise ValueError(f"unknown command {case['command']!r}")


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    print(json.dumps([run_case(case) for case in cases]))
