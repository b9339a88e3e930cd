"""The optimizer of a sweep (`training.sweeps`): the swept fields' values live in its state,
one per member, and the transformation is built anew from them at every update, so they
are data to the compiled step rather than constants of it."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZER = "optimizer."  # the swept fields' section of the config


class SweptState(NamedTuple):
    """The optimizer state of a sweep's member: its swept values and the inner state."""

    hparams: dict[str, Any]
    inner: Any


class _WithValues:
    """config.optimizer as the optimizer's builders read it, with some fields' values
    replaced by (traced) arrays."""

    def __init__(self, base: ml_collections.ConfigDict, values: dict[str, Any]):
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str):
        values = object.__getattribute__(self, "_values")
        return values[name] if name in values else getattr(self._base, name)

    def __setattr__(self, name: str, value) -> None:
        self._values[name] = value

    def copy_and_resolve_references(self) -> "_WithValues":
        return _WithValues(self._base.copy_and_resolve_references(), self._values)

    def unlocked(self):
        return self._base.unlocked()


def swept_optimizer(
    optimizer: ml_collections.ConfigDict,
    fields: tuple[str, ...],
    schedule_of: Callable[[Any], optax.Schedule],
    tx_of: Callable[[Any, optax.Schedule], optax.GradientTransformation],
) -> optax.GradientTransformation:
    """The transformation `tx_of(config.optimizer, schedule_of(config.optimizer))` makes,
    with the swept `fields` read from its state: built anew from each member's values at
    every update, so they are data to the compiled step. The state starts at the config's
    own values (`sweeps.with_member_values` gives each member its own). A swept peak rate
    scales the schedule drawn at peak 1: every schedule is linear in its peak, and optax's
    own branch on the peak's value, which a traced peak cannot be."""
    names = [field.removeprefix(OPTIMIZER) for field in fields]

    def inner(hparams) -> optax.GradientTransformation:
        values = {name: value for name, value in hparams.items() if name != "learning_rate"}
        if "learning_rate" not in hparams:
            return tx_of(_WithValues(optimizer, values), schedule_of(optimizer))
        peak = hparams["learning_rate"]
        unit = schedule_of(_WithValues(optimizer, {"learning_rate": 1.0}))
        return tx_of(_WithValues(optimizer, values), lambda step: peak * unit(step))

    def init(params):
        hparams = {name: jnp.asarray(optimizer[name], jnp.float32) for name in names}
        return SweptState(hparams, inner(hparams).init(params))

    def update(updates, state: SweptState, params=None):
        updates, new = inner(state.hparams).update(updates, state.inner, params)
        return updates, SweptState(state.hparams, new)

    return optax.GradientTransformation(init, update)
