"""`config.callbacks`: a fork's own code at the loop's moments, without editing the loop.

Each entry names a class as `package.module:Class`; `train_and_evaluate` imports it and
builds it with no arguments before anything is written, so a wrong name is one line, first.
A callback defines any of these hooks (every one optional):

    on_start(run, state, step)      before this process's first step (`step` > 0 on resume)
    on_step(step, state)            after step `step` (1-based) is dispatched; under the
                                    scanned epoch (`epoch_loop=scan`), once per epoch, after
                                    its last step. `state` is still computing: reading it
                                    waits for the device, so read it only every few steps
    on_epoch_end(epoch, state, rows) after epoch `epoch`'s rows and checkpoint are written;
                                    `rows` maps each split ("train", "test", ...) to its
                                    metrics
    on_end(state, test)             after the last epoch, with the final test metrics

Only the main process calls them. A hook that raises ends the run with one line naming the
callback and the hook (and the first line of its error, as the loss and model seams quote a
fork's failure); the checkpoints and rows written before it stay as they were.
"""

import inspect
from collections.abc import Sequence

from lenet_jax.errors import UserError, first_line
from lenet_jax.imports import import_attribute
from lenet_jax.training import distributed

HOOKS = ("on_start", "on_step", "on_epoch_end", "on_end")


class CallbackError(UserError):
    """A fork's callback could not be built, or one of its hooks raised."""


class Callbacks:
    """The run's callbacks, called in the order the config lists them."""

    def __init__(self, named: Sequence[tuple[str, object]] = ()):
        self.named = list(named)
        self.active = distributed.is_main_process()

    def __bool__(self) -> bool:
        return bool(self.named)

    def call(self, hook: str, *args) -> None:
        if not self.active:
            return
        for name, callback in self.named:
            method = getattr(callback, hook, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception as e:  # a fork's code: any failure is the fork's, in one line
                raise CallbackError(
                    f"callback {name!r} failed in {hook}: {type(e).__name__}: {first_line(e, 300)}"
                ) from e


def build(paths: Sequence[str], builtin: Sequence[tuple[str, object]] = ()) -> Callbacks:
    """Imports and builds each `package.module:Class` in `paths` (config.callbacks); the
    run's own (name, callback) pairs in `builtin` come after them."""
    named = []
    for path in paths:
        wanted = "a class with hooks " + ", ".join(HOOKS)
        factory = import_attribute(path, "callbacks", expected=wanted, error=CallbackError)
        if not callable(factory):
            raise CallbackError(
                f"config.callbacks: {path!r} is a {type(factory).__name__}; expected {wanted}"
            )
        try:
            callback = factory()
        except Exception as e:
            raise CallbackError(
                f"config.callbacks: {path!r} could not be built with no arguments: "
                f"{type(e).__name__}: {first_line(e, 300)}"
            ) from None
        _check_hooks(path, callback)
        named.append((path, callback))
    return Callbacks([*named, *builtin])


def _check_hooks(path: str, callback) -> None:
    """At least one hook, and no `on_...` method that is not one (a misspelt hook would
    otherwise never be called)."""
    methods = {name for name, _ in inspect.getmembers(callback, callable)}
    unknown = sorted(name for name in methods if name.startswith("on_") and name not in HOOKS)
    hooks = ", ".join(HOOKS)
    if unknown:
        raise CallbackError(
            f"config.callbacks: {path!r} defines {', '.join(unknown)}, which is not a hook; "
            f"the hooks are {hooks}"
        )
    if not methods & set(HOOKS):
        raise CallbackError(f"config.callbacks: {path!r} defines none of the hooks {hooks}")
