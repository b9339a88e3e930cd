"""The one exception type for bad input a user can fix.

The CLIs print it as a single line (`error: ...`) and exit non-zero; anything else is a
bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad config, dataset, workdir or checkpoint, with a message that says what to do."""


def one_line(message: str, limit: int | None = None) -> str:
    """Flattens a multi-line message (to at most `limit` characters); of an embedded
    traceback only its last line is kept."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        return f"{lines[0].split(': Error')[0]}: {lines[-1]}"[:limit]
    return " ".join(lines)[:limit]


def first_line(error: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (at most `limit` characters): what a
    one-line error or warning quotes of a library's many-line one."""
    return (str(error).strip().splitlines() or [""])[0][:limit]
