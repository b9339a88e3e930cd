"""The one exception type for bad input a user can fix.

The CLIs print it as a single line (`error: ...`) and exit non-zero; anything else is a
bug and keeps its traceback.
"""


class UserError(Exception):
    """A bad config, dataset, workdir or checkpoint, with a message that says what to do."""
