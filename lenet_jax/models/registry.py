"""The model registry, and `build_model`: a config's `model` fields -> a contract `Model`.

Research forks bring their own architecture without editing the package, either with
`register_model("name", factory)` or by naming it in the config as
`--config.model.name=my_pkg.my_module:MyNet`. A factory is a flax.linen or NNX Module
class, a `functools.partial` of one (flax's `ResNet18 = partial(ResNet, ...)` idiom), or a
function that returns a module (with an `rngs` parameter for NNX).

The other `config.model` fields are the module's keyword arguments, but only those the
module declares: a field the config file sets for a stock model (`kernel_init`,
`dropout_rate`, ...) is dropped for a module without it, with a warning, so a fork runs
with the stock configs unchanged. A field no model knows is an error.
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
from lenet_jax.imports import import_attribute
from lenet_jax.models.airbench import Airbench
from lenet_jax.models.cifar import CifarCNN
from lenet_jax.models.contract import Model, ModelError, parameters_of
from lenet_jax.models.lenet import LeNet
from lenet_jax.models.lenet1998 import LeNet1998
from lenet_jax.models.linen_model import LinenModel
from lenet_jax.models.nnx_model import NnxModel

ModelFactory = Callable[..., nn.Module | nnx.Module]

_REGISTRY: dict[str, ModelFactory] = {
    "lenet_d2l": functools.partial(LeNet, activation="sigmoid", pooling="avg"),
    "lenet_modern": functools.partial(LeNet, activation="relu", pooling="max"),
    "lenet5_1998": LeNet1998,
    "cifar_cnn": CifarCNN,
    "cifar_cnn_dropout": functools.partial(CifarCNN, dropout_rate=0.5),
    "cifar_cnn_bn": functools.partial(CifarCNN, batch_norm=True),
    "airbench": Airbench,
}
# Filled in by the trainer, never by the config: not passed where a module lacks them.
_FROM_THE_RUN = ("num_classes", "dtype", "batch_axis")


def register_model(name: str, factory: ModelFactory) -> None:
    """Makes `factory(**kwargs)` available as `config.model.name = name`."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = factory


def known_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs) -> nn.Module:
    """The raw module `name` makes with `kwargs` (no contract, no config filtering)."""
    return resolve_factory(name)(**kwargs)


def resolve_factory(name: str) -> ModelFactory:
    if ":" in name:
        return _import_factory(name)
    if name not in _REGISTRY:
        raise UserError(
            f"config.model.name: unknown model {name!r}; known: {known_models()} "
            "or 'package.module:ClassName'"
        )
    return _REGISTRY[name]


def _import_factory(path: str) -> ModelFactory:
    factory = import_attribute(path, "model.name")
    if not callable(factory) or isinstance(factory, nn.Module | nnx.Module):
        attr = path.partition(":")[2]
        raise UserError(
            f"config.model.name={path!r}: {attr!r} is a {type(factory).__name__}; expected "
            "a flax.linen or NNX Module class, a functools.partial of one, or a function "
            "that returns a module"
        )
    return factory


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


@functools.cache
def stock_fields() -> frozenset[str]:
    """Fields a stock config may set for a stock model: dropped, not refused, elsewhere."""
    from lenet_jax.config import base_config

    fields = set(base_config().model) - {"name"}
    for factory in _REGISTRY.values():
        fields |= declared_fields(factory) or set()
    return frozenset(fields)


def model_kwargs(
    model_config: ml_collections.ConfigDict,
    factory: ModelFactory,
    *,
    num_classes: int,
    dtype: str,
    batch_axis: str | None = None,
    passed: tuple[str, ...] = (),
) -> dict:
    """The keyword arguments `factory` gets: the config's fields it declares, and the run's;
    a factory with `**kwargs` also gets the `passed` fields (those the user set)."""
    name = model_config.name
    # None means "the model's own default", so a preset such as cifar_cnn_dropout keeps it.
    kwargs = {k: v for k, v in model_config.to_dict().items() if k != "name" and v is not None}
    fields = declared_fields(factory)
    if fields is None:  # `**kwargs`: what it names, what it builds, and the fork's own fields
        fields = accepted_by_kwargs_factory(factory, kwargs, num_classes)
        fields |= (set(kwargs) - stock_fields()) | (set(passed) & set(kwargs))
    for field in sorted(set(kwargs) - fields):
        if field not in stock_fields():
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


def build_model(
    model_config: ml_collections.ConfigDict,
    *,
    num_classes: int,
    dtype: str = "float32",
    batch_axis: str | None = None,
    passed: tuple[str, ...] = (),
) -> Model:
    """The model `config.model` names, behind the contract (`contract.Model`).

    `dtype` (the activations' dtype) goes to models with a `dtype` field; float32 needs none.
    `batch_axis` (pmap's device axis) goes to models with a `batch_axis` field (the stock
    ones), whose BatchNorm statistics then average over the devices. `passed`
    (config.model_fields_passed) reach a factory with `**kwargs` whether it names them or not.
    """
    name = model_config.name
    factory = resolve_factory(name)
    kwargs = model_kwargs(
        model_config,
        factory,
        num_classes=num_classes,
        dtype=dtype,
        batch_axis=batch_axis,
        passed=passed,
    )
    if is_nnx(factory):
        return NnxModel(name, lambda rngs: factory(**kwargs, rngs=rngs))
    try:
        module = factory(**kwargs)
    except Exception as e:
        raise ModelError(f"model {name!r} failed when built: {type(e).__name__}: {e}") from e
    if not isinstance(module, nn.Module):
        raise ModelError(
            f"model {name!r}: building it returned {type(module).__name__}, not a flax module"
        )
    return LinenModel(name, module)
