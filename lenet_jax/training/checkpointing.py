"""A thin orbax `CheckpointManager` wrapper: save, keep latest-N plus the best, resume.

A checkpoint holds the unreplicated train state (`state`) and what the loop carries
between steps (`loop`: the epoch's running train-metric sums), so a resumed run is
bit-identical to one that never stopped. Restores target the strategy's sharding, so a
checkpoint written on 8 devices restores on 1 and back. A full disk while saving is one
line saying which checkpoints are intact (`disk_full_as_one_line`).
"""

import contextlib
import errno
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from lenet_jax.errors import UserError, first_line
from lenet_jax.training.param_groups import path_name

SCORE = "score"  # what ranks a checkpoint: higher is better (`ranking`)


class IncompatibleCheckpoint(UserError):
    """The workdir's checkpoints have other parameter names or shapes than this config."""


def ranking(name: str, value: float, higher_is_better: bool) -> dict:
    """The metrics a checkpoint is saved with: `name`'s value, and the score that ranks it
    (the value, negated where lower is better)."""
    return {name: value, SCORE: value if higher_is_better else -value}


def _best_value(metrics: dict) -> float:
    """A checkpoint's score; one saved before `config.best_metric` holds its accuracy."""
    return metrics.get(SCORE, metrics.get("accuracy"))


def _handlers() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
    """A checkpoint's two items: the train state (arrays) and the loop's JSON carry."""
    registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
    for item, handler, save, restore in (
        ("state", ocp.StandardCheckpointHandler(), ocp.args.StandardSave, ocp.args.StandardRestore),
        ("loop", ocp.JsonCheckpointHandler(), ocp.args.JsonSave, ocp.args.JsonRestore),
    ):
        registry.add(item, save, handler)
        registry.add(item, restore, handler)
    return registry


class Checkpoints:
    """Checkpoints under `directory`; use as a context manager so async saves finish."""

    def __init__(self, directory: str, *, keep: int, read_only: bool = False):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(
            best_fn=_best_value,
            best_mode="max",
            preservation_policy=policies.AnyPreservationPolicy(
                [
                    policies.LatestN(n=keep),
                    policies.BestN(
                        get_metric_fn=_best_value, n=1, keep_checkpoints_without_metrics=False
                    ),
                ]
            ),
            enable_async_checkpointing=True,
            read_only=read_only,
            create=not read_only,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, handler_registry=_handlers()
        )

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            self.close()
            return
        try:  # already failing: that error, not a second one from the unfinished save, is news
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def save(self, step: int, state, loop: dict, *, metrics: dict | None = None) -> None:
        """Saves asynchronously; `metrics` (`ranking`) ranks the best checkpoint."""
        self.manager.check_for_errors()  # a failed asynchronous save surfaces here, not later
        if step in self.manager.all_steps():
            return  # already saved at this step (e.g. epoch end, then the final save)
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), loop=ocp.args.JsonSave(loop))
        self.manager.save(step, args=args, metrics=metrics)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def restore(self, step: int, abstract_state) -> tuple[object, dict]:
        """Restores `step` into the shapes and shardings of `abstract_state`."""
        check_compatible(self.saved_shapes(step), _shapes(abstract_state), self.directory)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), loop=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], dict(restored["loop"])

    def restore_arrays(self, step: int) -> dict:
        """The state saved at `step` as nested dicts of host arrays, with no target: what a
        warm start reads from a run of another config."""
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore())
        )
        return jax.tree.map(np.asarray, restored["state"])

    def saved_shapes(self, step: int) -> list[tuple[str, tuple, str]]:
        tree = self.manager.metadata(step).item_metadata["state"].tree
        return _shapes(tree)

    def restore_latest_good(self, abstract_state):
        """Restores the newest readable checkpoint; unreadable newer ones are moved aside.

        Returns (state, loop, step), or None when there is no checkpoint at all. Raises a
        UserError when checkpoints exist but none can be read: never a silent restart.
        A damaged checkpoint is renamed into `<directory>.corrupt/`, not deleted, so the
        resumed run can save that step again.
        """
        steps = self.steps()
        for step in reversed(steps):
            try:
                state, loop = self.restore(step, abstract_state)
            except IncompatibleCheckpoint:
                raise
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                if step == steps[0]:
                    break  # nothing older to fall back to: keep it in place, and stop
                moved = self._move_aside(step)
                print(
                    f"warning: checkpoint step {step} is unreadable ({type(e).__name__}: "
                    f"{first_line(e, 200)}); moved to {moved}, trying an older one",
                    flush=True,
                )
                continue
            return state, loop, step
        if steps:
            raise UserError(
                f"{self.directory}: none of the checkpoints {steps} can be read; "
                "move them aside to start afresh, or use a fresh --workdir"
            )
        return None

    def _move_aside(self, step: int) -> str:
        target = os.path.join(self.directory + ".corrupt", f"{step}-{int(time.time())}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(os.path.join(self.directory, str(step)), target)
        self.manager.reload()
        return target


def committed_steps(directory: str) -> list[int]:
    """The steps saved whole under `directory` (orbax writes under a temporary name, then
    renames), read from the file system alone."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def _leaf_shape(leaf) -> tuple[tuple, str]:
    return tuple(leaf.shape), str(leaf.dtype)


def _shapes(tree) -> list[tuple[str, tuple, str]]:
    """(path, shape, dtype) per leaf, with paths written the same for states and metadata."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return sorted((path_name(path), *_leaf_shape(leaf)) for path, leaf in leaves)


def check_compatible(saved, wanted, directory: str) -> None:
    """Raises IncompatibleCheckpoint naming the first leaf whose shape or presence differs."""
    if saved == wanted:
        return
    saved_by_name = {name: (shape, dtype) for name, shape, dtype in saved}
    wanted_by_name = {name: (shape, dtype) for name, shape, dtype in wanted}
    for name in sorted(set(saved_by_name) | set(wanted_by_name)):
        there, now = saved_by_name.get(name, "absent"), wanted_by_name.get(name, "absent")
        if there != now:
            raise IncompatibleCheckpoint(
                f"{directory} holds checkpoints of an incompatible config: '{name}' is {there} "
                f"there but {now} now; use a fresh --workdir (or the config that wrote it)"
            )
    raise IncompatibleCheckpoint(f"{directory} holds checkpoints of an incompatible config")


def _is_disk_full(error: BaseException | None) -> bool:
    """ENOSPC anywhere in the chain (orbax and tensorstore wrap the OSError)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def disk_full_as_one_line(workdir: str, ckpt_dir: str):
    """A full disk becomes a UserError saying what is kept and how to continue (around the
    checkpoint manager, whose last asynchronous save may fail as it closes)."""
    try:
        yield
    except Exception as e:
        if not _is_disk_full(e):
            raise
        where = getattr(e, "filename", None) or workdir
        steps = committed_steps(ckpt_dir)
        kept = f"checkpoints up to step {steps[-1]} are intact" if steps else "no checkpoint yet"
        raise UserError(
            f"no space left on the device of {where}; {kept}. Free some space and rerun the "
            "same command to resume"
        ) from None
