"""The model registry, and `build_model`: a config's `model` fields -> a contract `Model`.

Research forks bring their own architecture without editing the package, either with
`register_model("name", factory)` or by naming it in the config as
`--config.model.name=my_pkg.my_module:MyNet`. A factory is a flax.linen or NNX Module
class, a `functools.partial` of one (flax's `ResNet18 = partial(ResNet, ...)` idiom), or a
function that returns a module (with an `rngs` parameter for NNX).

The other `config.model` fields are the module's keyword arguments, but only those the
module declares: a field the config file sets for a stock model (`kernel_init`,
`dropout_rate`, ...) is dropped for a module without it, with a warning, so a fork runs
with the stock configs unchanged. A field no model knows is an error (`fields.model_kwargs`).
"""

import functools

import ml_collections
from flax import linen as nn
from flax import nnx

from lenet_jax.errors import UserError
from lenet_jax.imports import import_attribute
from lenet_jax.models.airbench import Airbench
from lenet_jax.models.cifar import CifarCNN
from lenet_jax.models.contract import Model, ModelError
from lenet_jax.models.fields import ModelFactory, declared_fields, is_nnx, model_kwargs
from lenet_jax.models.lenet import LeNet
from lenet_jax.models.lenet1998 import LeNet1998
from lenet_jax.models.linen_model import LinenModel
from lenet_jax.models.nnx_model import NnxModel

_REGISTRY: dict[str, ModelFactory] = {
    "lenet_d2l": functools.partial(LeNet, activation="sigmoid", pooling="avg"),
    "lenet_modern": functools.partial(LeNet, activation="relu", pooling="max"),
    "lenet5_1998": LeNet1998,
    "cifar_cnn": CifarCNN,
    "cifar_cnn_dropout": functools.partial(CifarCNN, dropout_rate=0.5),
    "cifar_cnn_bn": functools.partial(CifarCNN, batch_norm=True),
    "airbench": Airbench,
}


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


@functools.cache
def stock_fields() -> frozenset[str]:
    """Fields a stock config may set for a stock model: dropped, not refused, elsewhere."""
    from lenet_jax.config import base_config

    fields = set(base_config().model) - {"name"}
    for factory in _REGISTRY.values():
        fields |= declared_fields(factory) or set()
    return frozenset(fields)


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
        stock=stock_fields(),
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
