"""A model's layers from the inside: every submodule's output in call order, in eval mode,
and the same call with a chosen layer's output shifted (what a gradient with respect to
that layer, Grad-CAM's, differentiates).

Layers are what the module itself is made of, found the way each kind of module exposes
them: a linen module's submodule calls through `nn.intercept_methods`; an NNX module's
submodules through its graph (`nnx.iter_modules`), each one's `__call__` wrapped for the
length of the call. A layer is a submodule whose output is one (batch, height, width,
channels) array; a plain function inside a module (`nn.max_pool(x)`) is no submodule, so
it is not seen (the stock models pool with `layers.Pool`, which is one).

Everything here is traced, never run op by op: call `probe` under `jax.jit` or a gradient.
"""

import dataclasses
import functools
import types

import jax
from flax import linen as nn
from flax import nnx

from lenet_jax import prng
from lenet_jax.models.contract import Model, ModelError, model_output
from lenet_jax.models.linen_model import LinenModel
from lenet_jax.models.nnx_model import NnxModel

CONV, POOL, OTHER = "conv", "pool", "other"


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["output", "kernel"], meta_fields=["path", "kind"]
)
@dataclasses.dataclass(frozen=True)
class Layer:
    """One submodule's output: its path ("Conv_0", "features/conv1"), what it is (`CONV`: it
    holds a 4-D kernel; `POOL`: no parameters, smaller height and width than its input;
    else `OTHER`), its output (batch, H, W, C) and, for a convolution, its kernel
    (kh, kw, in, out)."""

    path: str
    kind: str
    output: jax.Array
    kernel: jax.Array | None = None


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["logits", "layers", "features"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True)
class Probed:
    """What one eval-mode call showed: the logits, the spatial layers in call order, and
    the features the classifier read (the input of the last submodule that returned the
    logits; None when the logits came from no submodule of two-dimensional input)."""

    logits: jax.Array
    layers: list[Layer]
    features: jax.Array | None


def probe(
    model: Model, params, batch_stats, images: jax.Array, shift: dict[str, jax.Array] | None = None
) -> Probed:
    """`model`'s eval-mode call on normalised `images`, looked inside; `shift` adds an array
    to the output of the layers it names (by path) before the call goes on."""
    shift = shift or {}
    heads: list = []
    if isinstance(model, LinenModel):
        logits, layers = _probe_linen(model, params, batch_stats, images, shift, heads)
    elif isinstance(model, NnxModel):
        logits, layers = _probe_nnx(model, params, batch_stats, images, shift, heads)
    else:
        raise ModelError(f"model {model.name!r}: no way to look inside a {type(model).__name__}")
    unknown = sorted(set(shift) - {layer.path for layer in layers})
    if unknown:
        raise ModelError(
            f"layer {unknown[0]!r} not found in model {model.name!r}; its layers: "
            f"{[layer.path for layer in layers]}"
        )
    features = next((x for x, out in reversed(heads) if out.shape == logits.shape), None)
    return Probed(logits, layers, features)


def _record(path: str, module_params, inputs, output, shift: dict, layers: list, heads: list):
    """The output, shifted if `shift` names `path`; a spatial one is appended to `layers`,
    and a flat one with a flat input to `heads` (as (input, output))."""
    first = inputs[0] if inputs else None
    if isinstance(output, jax.Array) and output.ndim == 2:
        if isinstance(first, jax.Array) and first.ndim == 2:
            heads.append((first, output))
        return output
    if not (isinstance(output, jax.Array) and output.ndim == 4):
        return output
    if path in shift:
        output = output + shift[path]
    kernel = module_params.get("kernel") if isinstance(module_params, dict) else None
    if kernel is not None and getattr(kernel, "ndim", 0) == 4:
        kind = CONV
    elif (
        not module_params
        and isinstance(first, jax.Array)
        and first.ndim == 4
        and first.shape[1:3] != output.shape[1:3]
    ):
        kind = POOL
    else:
        kind, kernel = OTHER, None
    layers.append(Layer(path, kind, output, kernel))
    return output


def _probe_linen(model: LinenModel, params, batch_stats, images, shift, heads):
    layers: list[Layer] = []

    def interceptor(next_fun, args, kwargs, context):
        output = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__" or module.scope is None or not module.scope.path:
            return output
        own = module.variables.get("params", {})
        own = {k: v for k, v in own.items() if not isinstance(v, dict)}
        return _record("/".join(module.scope.path), own, args, output, shift, layers, heads)

    rngs = model.rngs(prng.key(0))
    # The kind's own call, not `apply_output`: that binds the module's axis names in a vmap,
    # out of which the recorded outputs could not come.
    with nn.intercept_methods(interceptor):
        out, _ = model._apply(params, batch_stats, images, train=False, rngs=rngs)
    return model_output(out, model.name).logits, layers


def _probe_nnx(model: NnxModel, params, batch_stats, images, shift, heads):
    layers: list[Layer] = []
    module = model.merged(params, batch_stats, train=False)
    for path, sub in nnx.iter_modules(module):
        if path:
            _wrap_call(sub, "/".join(map(str, path)), shift, layers, heads)
    rngs = model.rngs(prng.key(0))
    out = model.call_merged(module, images, train=False, rngs=rngs)
    return model_output(out, model.name).logits, layers


def _wrap_call(module: nnx.Module, path: str, shift: dict, layers: list, heads: list) -> None:
    """Gives this one instance a `__call__` that records its output: a subclass made for it
    (Python looks `__call__` up on the type), so the module's own code runs unchanged."""
    cls = type(module)

    def __call__(self, *args, **kwargs):
        output = cls.__call__(self, *args, **kwargs)
        own = {
            name: value.get_value()
            for name, value in vars(self).items()
            if isinstance(value, nnx.Param)
        }
        return _record(path, own, args, output, shift, layers, heads)

    module.__class__ = types.new_class(
        cls.__name__, (cls,), exec_body=lambda ns: ns.update(__call__=__call__)
    )
