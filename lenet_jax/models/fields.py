"""Which `config.model` fields reach a model factory, and whether their values fit.

A factory gets the fields its module declares (a dataclass field, or a parameter of the
function or `__init__`), plus the run's own (`num_classes`, `dtype`, `batch_axis`) where it
takes them; a factory with `**kwargs` also gets those the user set. A value is checked
against the field's simple type hint, so a wrong type is one line naming the field.
"""

import collections.abc
import dataclasses
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable

import jax.numpy as jnp
import ml_collections
from flax import linen as nn
from flax import nnx

from lenet_jax.errors import UserError
from lenet_jax.models.calls import parameters_of

ModelFactory = Callable[..., nn.Module | nnx.Module]
# Filled in by the trainer, never by the config: not passed where a module lacks them.
_FROM_THE_RUN = ("num_classes", "dtype", "batch_axis")


def _target(factory: ModelFactory):
    while isinstance(factory, functools.partial):
        factory = factory.func
    return factory


def _is_class(factory, base: type) -> bool:
    target = _target(factory)
    return isinstance(target, type) and issubclass(target, base)


def is_nnx(factory: ModelFactory) -> bool:
    """NNX classes, and functions that take the `rngs` NNX modules are built with."""
    return _is_class(factory, nnx.Module) or (
        not _is_class(factory, nn.Module) and "rngs" in parameters_of(_target(factory))
    )


def _factory_parameters(factory: ModelFactory) -> dict[str, inspect.Parameter]:
    """The parameters a factory is called with: its class's `__init__`, or the function."""
    target = _target(factory)
    return parameters_of(target.__init__ if isinstance(target, type) else target)


def declared_fields(factory: ModelFactory) -> set[str] | None:
    """The keyword arguments a factory takes; None when it takes any (`**kwargs`)."""
    target = _target(factory)
    if _is_class(factory, nn.Module):
        return {f.name for f in dataclasses.fields(target)} - {"parent", "name"}
    parameters = _factory_parameters(factory)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return set(parameters) - {"self", "rngs"}


def accepted_by_kwargs_factory(factory: ModelFactory, kwargs: dict, num_classes: int) -> set:
    """The fields a factory with `**kwargs` accepts: those it names, and where it returns a
    linen module when called with just those (big_vision's `Model(num_classes, *,
    variant=None, **kw)` returning `_Model`), that module's fields."""
    named = {
        name
        for name, p in _factory_parameters(factory).items()
        if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    } - {"self", "rngs"}
    if is_nnx(factory):
        return named  # building an NNX module to learn its fields would initialise it
    probe = {k: v for k, v in kwargs.items() if k in named}
    if "num_classes" in named:
        probe["num_classes"] = num_classes
    try:
        built = factory(**probe)
    except Exception:  # it needs more than its named fields: those, and the class count
        return named | {"num_classes"}
    if isinstance(built, nn.Module):
        return named | {f.name for f in dataclasses.fields(built)} - {"parent", "name"}
    return named


def model_kwargs(
    model_config: ml_collections.ConfigDict,
    factory: ModelFactory,
    *,
    num_classes: int,
    dtype: str,
    batch_axis: str | None = None,
    passed: tuple[str, ...] = (),
    stock: frozenset[str] = frozenset(),
) -> dict:
    """The keyword arguments `factory` gets: the config's fields it declares, and the run's;
    a factory with `**kwargs` also gets the `passed` fields (those the user set). A field
    it lacks is dropped with a warning where it is one of the `stock` ones (a stock config
    sets it for a stock model), and refused otherwise."""
    name = model_config.name
    # None means "the model's own default", so a preset such as cifar_cnn_dropout keeps it.
    kwargs = {k: v for k, v in model_config.to_dict().items() if k != "name" and v is not None}
    fields = declared_fields(factory)
    if fields is None:  # `**kwargs`: what it names, what it builds, and the fork's own fields
        fields = accepted_by_kwargs_factory(factory, kwargs, num_classes)
        fields |= (set(kwargs) - stock) | (set(passed) & set(kwargs))
    for field in sorted(set(kwargs) - fields):
        if field not in stock:
            raise UserError(
                f"unknown config field 'model.{field}': config.model.{field} is not a field "
                f"of {name!r}; its fields: {sorted(fields - set(_FROM_THE_RUN))}. A fork "
                f"adds its own by declaring it on its module (`{field}: int = ...`), then "
                f"sets it with --config.model.{field}=..."
            )
        print(
            f"warning: config.model.{field}={kwargs[field]!r} is not a field of {name!r}; "
            f"not passed to it (--config.model.{field}=None clears it)",
            file=sys.stderr,
            flush=True,
        )
        del kwargs[field]
    check_field_types(factory, kwargs, name)
    if "num_classes" in fields:
        kwargs["num_classes"] = num_classes
    if "batch_axis" in fields and batch_axis is not None:
        kwargs["batch_axis"] = batch_axis
    if "dtype" in fields:
        kwargs["dtype"] = jnp.dtype(dtype)
    elif dtype != "float32":
        raise UserError(
            f"config.compute_dtype={dtype!r} needs a model with a `dtype` field; {name!r} has none"
        )
    return kwargs


def _accepts(hint, value) -> bool | None:
    """Whether `value` fits a field's simple type hint; None for a hint this does not read."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return value is None or (len(rest) == 1 and _accepts(rest[0], value) is not False)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, collections.abc.Sequence) and args and args[0] is int:
        return isinstance(value, tuple | list) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
        )
    return None


def check_field_types(factory: ModelFactory, kwargs: dict, name: str) -> None:
    """A config value that does not fit its linen field's type (`batch_norm: bool`,
    `features: Sequence[int]`, whose entries are layer sizes: positive) is one line."""
    if not _is_class(factory, nn.Module):
        return
    try:
        hints = typing.get_type_hints(_target(factory))
    except Exception:  # annotations this Python cannot resolve: nothing to check against
        return
    for field, value in kwargs.items():
        if field in hints and _accepts(hints[field], value) is False:
            shown = getattr(hints[field], "__name__", None) or str(hints[field])
            positive = " of positive integers" if typing.get_args(hints[field]) == (int,) else ""
            raise UserError(
                f"config.model.{field}={value!r} is not allowed; {name!r} declares it as "
                f"{shown.replace('typing.', '')}{positive}"
            )
