"""A command's checks run in this process, its exit code and stderr captured: how the
bad-input tests try many inputs without a process (and an import of JAX) each.

Also a program, for checks that must run in a process of their own, printing JSON results:
  python tests/cli_checks.py CASES.json        each case of a JSON list (`run_case`), e.g.
                                               with root's power to read any file dropped
  python tests/cli_checks.py --flags MODULE BASE_JSON   the command MODULE's own flags, each
                                               given a wrong value (`flag_cases`)
"""

import contextlib
import importlib
import io
import json
import sys
from collections.abc import Callable

from absl import flags

from lenet_jax import cli


def error_lines(stderr: str) -> list[str]:
    """The `error:` lines of a command's stderr: a bad input must give exactly one."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


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

        def evaluate():
            evaluate_workdir(case["workdir"], "latest")  # prints nothing; returns the report

        return in_process(evaluate)
    if case["command"] == "predict":
        from lenet_jax.predict import predict_files
        from lenet_jax.report.inference import load_run

        return in_process(
            lambda: predict_files(load_run(case["workdir"], "latest"), case["images"])
        )
    raise ValueError(f"unknown command {case['command']!r}")


def _bad_values(flag) -> list[str]:
    """Wrong on purpose for the flag's parser: another type, out of range, empty, huge."""
    parser = type(flag.parser).__name__
    if parser == "IntegerParser":
        return ["abc", "-1", "", "9" * 30]
    if parser == "EnumParser":
        return ["no_such_value", ""]
    if parser == "BooleanParser":
        return ["maybe"]
    return ["", "no_such_value", "x" * 5000]


def flag_cases(module_name: str, base: list[str]) -> list[list[str]]:
    """Argument lists for the command `module_name`, whose arguments `base` are right: each
    of its own flags given each wrong value, an unknown flag, an unexpected argument, and
    no arguments at all."""
    module = importlib.import_module(module_name)
    if hasattr(module, "define_flags"):
        module.define_flags()
    cases = [[], [*base, "--no_such_flag=1"], [*base, "unexpected_argument"]]
    for flag in flags.FLAGS.flags_by_module_dict().get(module_name, []):
        for value in _bad_values(flag):
            others = [arg for arg in base if not arg.startswith(f"--{flag.name}=")]
            cases.append([*others, f"--{flag.name}={value}"])
    return cases


def run_command(module_name: str, argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of the command `module_name` given `argv`, as `cli.run` runs it."""
    module = sys.modules[module_name]
    flags.FLAGS.unparse_flags()
    return in_process(
        lambda: cli.usage_as_one_line(module.main, cli.parse_flags([module_name, *argv]))
    )


if __name__ == "__main__":
    if sys.argv[1] == "--flags":
        name, base = sys.argv[2], json.loads(sys.argv[3])
        cases = flag_cases(name, base)
        print(json.dumps([(argv, *run_command(name, argv)) for argv in cases]))
    else:
        with open(sys.argv[1]) as f:
            cases = json.load(f)
        print(json.dumps([run_case(case) for case in cases]))
