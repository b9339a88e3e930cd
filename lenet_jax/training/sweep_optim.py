"""The optimizer of a sweep (`training.sweeps`): the swept fields' values live in its state,
one per member, and the transformation is built anew from them at every update, so they
are data to the compiled step rather than constants of it. The train step reads the loss's
swept values from the same place (`swept_values`)."""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZER = "optimizer."  # the optimizer's section of the config


def state_name(field: str) -> str:
    """A swept field's name among the state's values: without `optimizer.`, as the
    optimizer's builders read it (`learning_rate`); the others' in full."""
    return field.removeprefix(OPTIMIZER)


class SweptState(NamedTuple):
    """The optimizer state of a sweep's member: its swept values and the inner state."""

    hparams: dict[str, Any]
    inner: Any


def swept_values(opt_state) -> Mapping[str, Any] | None:
    """A sweep's member's values (field names without the `optimizer.` prefix), read from
    its optimizer state; None outside a sweep."""
    return opt_state.hparams if isinstance(opt_state, SweptState) else None


class WithValues:
    """A config section as its builders read it (the optimizer's, the loss's), with some
    fields' values replaced by (traced) arrays."""

    def __init__(self, base: ml_collections.ConfigDict, values: dict[str, Any]):
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str):
        values = object.__getattribute__(self, "_values")
        return values[name] if name in values else getattr(self._base, name)

    def __setattr__(self, name: str, value) -> None:
        self._values[name] = value

    def copy_and_resolve_references(self) -> "WithValues":
        return WithValues(self._base.copy_and_resolve_references(), self._values)

    def unlocked(self):
        return self._base.unlocked()


def swept_optimizer(
    optimizer: ml_collections.ConfigDict,
    start: Mapping[str, float],
    schedule_of: Callable[[Any], optax.Schedule],
    tx_of: Callable[[Any, optax.Schedule], optax.GradientTransformation],
) -> optax.GradientTransformation:
    """The transformation `tx_of(config.optimizer, schedule_of(config.optimizer))` makes,
    with the swept values (`start`: name -> the first member's) kept in its state and the
    optimizer's among them read from there: built anew from each member's values at every
    update, so they are data to the compiled step (`sweeps.with_member_values` gives each
    member its own). A swept peak rate scales the schedule drawn at peak 1: every schedule
    is linear in its peak, and optax's own branch on the peak's value, which a traced peak
    cannot be."""

    def inner(hparams) -> optax.GradientTransformation:
        values = {
            name: value
            for name, value in hparams.items()
            if name != "learning_rate" and name in optimizer
        }
        if "learning_rate" not in hparams:
            return tx_of(WithValues(optimizer, values), schedule_of(optimizer))
        peak = hparams["learning_rate"]
        unit = schedule_of(WithValues(optimizer, {"learning_rate": 1.0}))
        return tx_of(WithValues(optimizer, values), lambda step: peak * unit(step))

    def init(params):
        hparams = {name: jnp.asarray(value, jnp.float32) for name, value in start.items()}
        return SweptState(hparams, inner(hparams).init(params))

    def update(updates, state: SweptState, params=None):
        updates, new = inner(state.hparams).update(updates, state.inner, params)
        return updates, SweptState(state.hparams, new)

    return optax.GradientTransformation(init, update)
