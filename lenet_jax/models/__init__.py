"""Model registry: `get_model(name, **kwargs)` builds a linen module by name.

Research forks bring their own architecture without editing the package, either with
`register_model("name", factory)` or by naming it in the config as
`--config.model.name=my_pkg.my_module:MyNet`.
"""

import dataclasses
import functools
import importlib
from collections.abc import Callable

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from lenet_jax.errors import UserError
from lenet_jax.models.cifar import CifarCNN
from lenet_jax.models.lenet import LeNet
from lenet_jax.models.lenet1998 import LeNet1998

ModelFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFactory] = {
    "lenet_d2l": functools.partial(LeNet, activation="sigmoid", pooling="avg"),
    "lenet_modern": functools.partial(LeNet, activation="relu", pooling="max"),
    "lenet5_1998": LeNet1998,
    "cifar_cnn": CifarCNN,
    "cifar_cnn_dropout": functools.partial(CifarCNN, dropout_rate=0.5),
    "cifar_cnn_bn": functools.partial(CifarCNN, batch_norm=True),
}


def register_model(name: str, factory: ModelFactory) -> None:
    """Makes `factory(**kwargs)` available as `config.model.name = name`."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = factory


def known_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs) -> nn.Module:
    return _factory(name)(**kwargs)


def _factory(name: str) -> ModelFactory:
    if ":" in name:
        return _import_factory(name)
    if name not in _REGISTRY:
        raise UserError(
            f"config.model.name: unknown model {name!r}; known: {known_models()} "
            "or 'package.module:ClassName'"
        )
    return _REGISTRY[name]


def _import_factory(path: str) -> ModelFactory:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(
            f"config.model.name={path!r}: cannot import {module_name!r} ({e})"
        ) from None
    factory = getattr(module, attr, None)
    if not (isinstance(factory, type) and issubclass(factory, nn.Module)):
        raise UserError(f"config.model.name={path!r}: {attr!r} is not a flax.linen Module class")
    return factory


def build_model(
    model_config: ml_collections.ConfigDict, *, num_classes: int, dtype: str = "float32"
) -> nn.Module:
    """The model `config.model` names, built with its other fields as keyword arguments.

    `dtype` (the activations' dtype) goes to models with a `dtype` field; float32 needs none.
    """
    # None means "the model's own default", so a preset such as cifar_cnn_dropout keeps it.
    kwargs = {k: v for k, v in model_config.to_dict().items() if k != "name" and v is not None}
    factory = _factory(model_config.name)
    target = factory.func if isinstance(factory, functools.partial) else factory
    fields = (
        {f.name for f in dataclasses.fields(target)} if dataclasses.is_dataclass(target) else None
    )
    if fields is not None:
        unknown = sorted(set(kwargs) - fields)
        if unknown:
            allowed = sorted(fields - {"parent", "name"})
            raise UserError(
                f"config.model.{unknown[0]} is not a field of {model_config.name!r}; "
                f"its fields: {allowed}"
            )
    if fields is None or "num_classes" in fields:
        kwargs["num_classes"] = num_classes
    if fields is not None and "dtype" in fields:
        kwargs["dtype"] = jnp.dtype(dtype)
    elif dtype != "float32":
        raise UserError(
            f"config.compute_dtype={dtype!r} needs a model with a `dtype` field; "
            f"{model_config.name!r} has none"
        )
    return factory(**kwargs)
