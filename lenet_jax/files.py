"""Files written whole or not at all: every file the toolkit rewrites goes through here; and
the check that a path a user names can be read at all.

`atomic_open` writes under a temporary name beside the target, flushes and fsyncs it, renames
it over the target, then fsyncs the directory, so that after a crash or a power cut the
path holds the old bytes or the new ones: never a cut file, never an empty one (a rename
that reaches the disk before its data does leaves an empty file, which is why the data is
fsynced first). Orbax writes checkpoints its own way, with the same guarantee.
"""

import contextlib
import os

from lenet_jax.errors import UserError


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """A file object to write `path`'s new contents to; they replace it when the block ends
    without an exception, and a failed block leaves `path` as it was."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_directory(directory)


def write_text(path: str, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def _fsync_directory(directory: str) -> None:
    """Makes the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_readable(path: str, field: str) -> None:
    """A UserError naming `field` when this process may not read `path` (or list it, for a
    directory), or the system refuses the name itself. Without this an unreadable directory
    looks empty, and the error would say the files are missing."""
    try:
        if os.path.isdir(path):
            os.listdir(path)
        elif os.path.exists(path):
            with open(path, "rb"):
                pass
        else:
            os.stat(path)  # a parent that cannot be searched says so here
    except FileNotFoundError:
        return  # missing: the caller's own check says what was expected there
    except OSError as e:  # permission denied, a name too long, a loop of links
        raise UserError(f"{field}={path!r}: {(e.strerror or str(e)).lower()}") from None
