"""What every command-line entry point shares: the --config flag, and bad input as one line.

`--config.model.<field>=value` may name a field the config file lacks (a fork's own module
field); every other override must name an existing field, or it is one line saying which
fields exist.
"""

import contextlib
import difflib
import functools
import os
import re
import sys

from lenet_jax.errors import UserError, one_line

EXIT_USER_ERROR = 2
OPEN_SECTION = "model"  # the one part of a config a fork may extend (config.lock)
# `--config.model.<field>=None` clears a stock field for a fork that lacks it. absl parses
# an override by the field's type (a bool refuses "None"), so these are taken out of the
# arguments before parsing and applied after.
_CLEARED_MODEL_FIELDS: list[str] = []
# The config.model fields the command line sets: a factory with `**kwargs` gets them, stock
# or not (config.model_fields_passed).
_SET_MODEL_FIELDS: list[str] = []


@contextlib.contextmanager
def user_errors_as_one_line(exit=sys.exit):
    """Prints a UserError as `error: ...` on stderr and exits 2; other errors keep tracebacks.

    `exit` ends the process (`train` passes one that skips the interpreter's teardown, where
    an interrupted checkpoint write would print its own noise). `LENET_JAX_TRACEBACK=1`
    keeps the traceback of a UserError too, for debugging a model.
    """
    try:
        yield
    except UserError as e:
        if os.environ.get("LENET_JAX_TRACEBACK"):
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        exit(EXIT_USER_ERROR)


def define_config_flag(flag_values=None, argv: list[str] | None = None):
    """`--config FILE[:arg]` with `--config.a.b=v` overrides; read it with `config_or_error`.
    `flag_values` and `argv` (whose overrides it learns): absl's global flags and
    `sys.argv` unless given (the bad-input tests parse many command lines in-process)."""
    from absl import flags
    from ml_collections import config_flags

    return config_flags.DEFINE_config_file(
        "config",
        None,
        "Config file, optionally FILE:arg (e.g. configs/fashion.py:smoke).",
        flag_values=flags.FLAGS if flag_values is None else flag_values,
        lock_config=False,  # locked by config_or_error, once new model fields are in
        accept_new_attributes=True,
        sys_argv=argv,
    )


def config_or_error(config_flag):
    """The parsed `--config`, checked and locked (`config.lock`).

    ml_collections defers a missing file's error to first use, and with new attributes
    allowed it would take a typo such as `--config.optimzer.learning_rate` as a new field:
    the file is read again, and an override outside `config.model` that names no field of
    it is refused, with the fields that exist.
    """
    from absl import flags
    from ml_collections import config_flags

    from lenet_jax.config import load_config_file, lock

    if isinstance(config_flag, flags.FlagHolder):
        config_flag = flags.FLAGS[config_flag.name]
    config = config_flag.value
    try:
        config.get("dataset")  # the deferred error object raises on any attribute
    except OSError as e:
        raise UserError(f"--config: {one_line(str(e))}") from None
    original = load_config_file(config_flags.get_config_filename(config_flag))
    for field in _CLEARED_MODEL_FIELDS:
        config.model[field] = None  # not passed to the model, which keeps its own default
    passed = set(config.model_fields_passed) | set(_SET_MODEL_FIELDS)
    config.model_fields_passed = tuple(sorted(passed - {"name"}))
    for path in sorted(_paths(config) - _paths(original)):
        if path.split(".")[0] != OPEN_SECTION:
            raise UserError(_unknown_field(path, original))
    return lock(config)


def _paths(config, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in config.items():
        paths.add(prefix + key)
        if hasattr(value, "items"):
            paths |= _paths(value, f"{prefix}{key}.")
    return paths


def _unknown_field(path: str, original) -> str:
    """`unknown config field 'optimzer' (--config.optimzer.lr=...); did you mean ...`."""
    parts, node, known = path.split("."), original, []
    for i, part in enumerate(parts):
        known = sorted(node.keys())
        if part not in node:
            field = ".".join(parts[: i + 1])
            close = difflib.get_close_matches(part, known, n=1)
            hint = f"; did you mean {'.'.join([*parts[:i], close[0]])!r}?" if close else ""
            where = f" in {'.'.join(parts[:i])}" if i else ""
            return (
                f"unknown config field {field!r} (--config.{path}){hint} Fields{where}: {known}; "
                f"only config.{OPEN_SECTION} takes new fields (a fork's module fields)"
            )
        node = node[part]
    return f"unknown config field {path!r}"


def _load_config_arg(argv: list[str]) -> None:
    """Loads the `--config` file once before absl does, so a file that fails to load is
    one line (`config.load_config_file`), not absl's traceback."""
    from lenet_jax.config import load_config_file

    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            load_config_file(arg.removeprefix("--config="))
        elif arg == "--config" and i + 1 < len(argv):
            load_config_file(argv[i + 1])


def parse_flags(argv: list[str], flag_values=None) -> list[str]:
    """absl's flag parsing, with config-override mistakes turned into one line and exit 2."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    kept = []
    _CLEARED_MODEL_FIELDS.clear()  # this parse's, not a previous one's
    _SET_MODEL_FIELDS.clear()
    for arg in argv:
        match = re.fullmatch(rf"--config\.{OPEN_SECTION}\.(\w+)=None", arg)
        if match:
            _CLEARED_MODEL_FIELDS.append(match.group(1))
            continue
        kept.append(arg)
        match = re.match(rf"--config\.{OPEN_SECTION}\.(\w+)(=|$)", arg)
        if match:
            _SET_MODEL_FIELDS.append(match.group(1))
    try:
        _load_config_arg(kept)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    try:
        return flag_values(kept)
    except KeyError as e:
        detail = one_line(str(e.args[0]) if e.args else str(e))
        print(f"error: unknown config field {detail}", file=sys.stderr, flush=True)
    except (flags.Error, AttributeError, TypeError, ValueError) as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)


def run(main) -> None:
    """Runs a command's `main` as absl's `app.run` does, with `parse_flags`, and a usage
    mistake (an argument missing or unexpected) as one line and exit 2: absl would print
    the command's whole docstring."""
    from absl import app

    app.run(functools.partial(usage_as_one_line, main), flags_parser=parse_flags)


def usage_as_one_line(main, argv: list[str]) -> None:
    """`main(argv)`, with absl's UsageError as `error: ...; usage: ...` and exit 2."""
    from absl import app

    try:
        main(argv)
    except app.UsageError as e:
        usage = re.search(r"`(python -m [^`]+)`", sys.modules["__main__"].__doc__ or "")
        print(
            f"error: {e}; usage: {usage.group(1) if usage else argv[0]}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(EXIT_USER_ERROR)
