"""What every command-line entry point shares: bad input is one line and a non-zero exit."""

import contextlib
import sys

from lenet_jax.errors import UserError

EXIT_USER_ERROR = 2


@contextlib.contextmanager
def user_errors_as_one_line():
    """Prints a UserError as `error: ...` on stderr and exits 2; other errors keep tracebacks."""
    try:
        yield
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)


def _one_line(message: str) -> str:
    """Flattens a multi-line message; of an embedded traceback only its last line is kept."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        return f"{lines[0].split(': Error')[0]}: {lines[-1]}"
    return " ".join(lines)


def config_or_error(config_flag):
    """The parsed `--config`; ml_collections defers a missing file's error to first use."""
    config = config_flag.value
    try:
        config.get("dataset")  # the deferred error object raises on any attribute
    except OSError as e:
        raise UserError(f"--config: {_one_line(str(e))}") from None
    return config


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with config-override mistakes turned into one line and exit 2.

    ml_collections raises a bare KeyError (with a did-you-mean hint) for a typo such as
    `--config.optimzer.learning_rate`; without this it would surface as a traceback.
    """
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except KeyError as e:
        detail = _one_line(str(e.args[0]) if e.args else str(e))
        print(f"error: unknown config field {detail}", file=sys.stderr, flush=True)
    except (flags.Error, AttributeError, TypeError, ValueError) as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USER_ERROR)
