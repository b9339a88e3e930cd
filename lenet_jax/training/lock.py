"""One run per workdir: an exclusive `flock` on `workdir/.lock`, released by the kernel.

A second `train` on a busy workdir (two terminals, a scheduler's requeue while the old job
still runs) is refused in one line naming the holder; the lock goes when its process does,
however it dies, so a crash never leaves a workdir locked. Readers (`evaluate`, `predict`)
take no lock but ask `holder()`, and write nothing into a busy workdir.
"""

import contextlib
import fcntl
import os
import socket
import time

from lenet_jax.errors import UserError

LOCK_FILE = ".lock"


class WorkdirBusy(UserError):
    """Another process holds the workdir's lock."""


def _path(workdir: str) -> str:
    return os.path.join(workdir, LOCK_FILE)


def _describe(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 512).decode(errors="replace").strip()
    return text or "another process"


@contextlib.contextmanager
def exclusive(workdir: str):
    """Holds the workdir's lock for the block; raises WorkdirBusy if another process has it,
    and a one-line UserError for a workdir that is a file or cannot be made."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UserError(
            f"--workdir={workdir} is a file; expected a directory (a new one, or a run's)"
        )
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(_path(workdir), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(
            f"--workdir={workdir}: cannot write there ({e.strerror}: {e.filename}); expected "
            "a directory this user can create and write"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusy(
                f"--workdir={workdir} is in use by {_describe(fd)}; wait for that run to end "
                "(or stop it), or use another --workdir"
            ) from None
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        who = f"pid {os.getpid()} on host {socket.gethostname()} since {since}\n"
        os.pwrite(fd, who.encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays, empty of meaning


def holder(workdir: str) -> str | None:
    """Who holds the workdir's lock ("pid 123 on host h since ..."), or None if nobody does."""
    try:
        fd = os.open(_path(workdir), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(fd)
    finally:
        os.close(fd)
    return None
