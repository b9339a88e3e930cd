"""Models: the LeNets and the CIFAR CNN, a registry, and the contract any module meets.

`build_model(config.model, num_classes=...)` returns a `contract.Model`, which is what the
trainer, evaluate, predict and summary call; `get_model(name, **kwargs)` the raw module.
"""

from lenet_jax.models.contract import Model, ModelError
from lenet_jax.models.linen_model import LinenModel
from lenet_jax.models.nnx_model import NnxModel
from lenet_jax.models.registry import (
    build_model,
    get_model,
    known_models,
    register_model,
    resolve_factory,
)

__all__ = [
    "LinenModel",
    "Model",
    "ModelError",
    "NnxModel",
    "build_model",
    "get_model",
    "known_models",
    "register_model",
    "resolve_factory",
]
