"""The model contract: the modules people actually write, behind one functional interface.

The trainer, evaluate, predict and summary never call a module directly; they call a
`Model`:

  init(key, images)                                   -> (params, batch_stats)
  apply(params, batch_stats, images, *, train, rngs)  -> (logits, batch_stats)

Two kinds of module meet it (docs/custom_model.md has the user's side):
  * flax.linen modules (`LinenModel`). The mode comes from a `train`/`training` (or
    inverted `deterministic`) keyword of `__call__`, else from a module field of one of
    those names, else the module has no train mode. BatchNorm statistics live in the
    "batch_stats" collection.
  * Flax NNX modules (`NnxModel`), run functionally: `nnx.merge` the graph with the state
    each step, `train()`/`eval()` it, reseed its RNG streams from the step key, call it,
    `nnx.split` the new statistics back out. `nnx.Param`s are the params and every other
    non-RNG variable (BatchStat, ...) the batch_stats, both as plain nested dicts, so
    checkpoints hold NNX models the way they hold linen ones.

The output may be logits, a tuple whose first element is the logits, or a dict with
"logits"; the rest of it reaches the loss (`Output`, `training.losses`). `check` runs the
contract once on abstract values (no FLOPs) before any work is done, and in doing so
discovers the RNG streams the module asks for and the axis names its collectives use:
each stream gets its own key from the step key, and on one device (or under jit sharding,
whose batch is already global) each axis is bound with a size-1 `vmap`, so a BatchNorm
written for pmap (`axis_name="batch"`) runs anywhere. A failure inside the module becomes
one `ModelError` line that names the contract point.
"""

import functools
import inspect
import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import errors as flax_errors
from flax import linen as nn
from flax import nnx

from lenet_jax import prng
from lenet_jax.errors import UserError, first_line

MODE_NAMES = ("train", "training")  # True in train mode
INVERTED_MODE_NAMES = ("deterministic",)  # True in eval mode
_MAX_PROBES = 8  # RNG streams plus axis names a module may reveal one at a time


class ModelError(UserError):
    """The module broke the contract, or failed inside, at a named contract point."""


def stream_key(base: jax.Array, stream: str) -> jax.Array:
    """The key of RNG stream `stream` in a step: `base` itself for "dropout", else folded.

    A stable hash of the name (not Python's salted `hash`) keeps it the same across runs.
    """
    if stream == "dropout":
        return base
    return jax.random.fold_in(base, zlib.crc32(stream.encode()) & 0x7FFFFFFF)


class Output(NamedTuple):
    """A module's output as the contract reads it: what losses receive.

    `logits` (batch, classes); `extras` the named rest of a tuple or dict output (a
    dict's other keys, the entries of dicts inside a tuple, and any other tuple element
    as `output_<position>`); `raw` the module's output unchanged.
    """

    logits: jax.Array
    extras: dict[str, Any]
    raw: Any


_OUTPUT_FORMS = "logits, a tuple whose first element is the logits, or a dict with 'logits'"


def model_output(out, name: str) -> Output:
    """The contract's reading of a module's output: logits, (logits, extras...) or
    {"logits": ..., extras...}."""
    extras = {}
    if isinstance(out, tuple | list) and out:
        logits = out[0]
        for position, extra in enumerate(out[1:], start=1):
            if isinstance(extra, dict):
                extras.update({str(k): v for k, v in extra.items()})
            else:
                extras[f"output_{position}"] = extra
    elif isinstance(out, dict):
        if "logits" not in out:
            raise ModelError(
                f"model {name!r} returned a dict with keys {sorted(out)}; the contract "
                f"wants {_OUTPUT_FORMS}"
            )
        logits = out["logits"]
        extras = {str(k): v for k, v in out.items() if k != "logits"}
    else:
        logits = out
    if not hasattr(logits, "shape") or not hasattr(logits, "dtype"):
        raise ModelError(
            f"model {name!r} returned {type(logits).__name__}; the contract wants {_OUTPUT_FORMS}"
        )
    return Output(logits, extras, out)


class Model:
    """A module behind the contract; subclasses say how to init and call their kind."""

    def __init__(self, name: str):
        self.name = name
        self._rng_streams: tuple[str, ...] = ("dropout",)  # grown by `check`
        self.axis_names: tuple[str, ...] = ()  # likewise
        self.has_batch_stats = False  # whether it keeps statistics (BatchNorm's), likewise

    # What each kind implements.

    def init(self, key: jax.Array, images: jax.Array):
        raise NotImplementedError

    def _apply(self, params, batch_stats, images, *, train: bool, rngs: dict):
        raise NotImplementedError

    # The one interface.

    def abstract_params(self, image_shape: Sequence[int]):
        """The parameters' shapes for images of `image_shape` (nothing computed)."""
        images = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
        return jax.eval_shape(self.init, prng.key(0), images)[0]

    @property
    def rng_streams(self) -> tuple[str, ...]:
        return self._rng_streams

    def rngs(self, key: jax.Array) -> dict[str, jax.Array]:
        """One key per RNG stream the module asks for, all from the step's `key`."""
        return {stream: stream_key(key, stream) for stream in self.rng_streams}

    def apply(self, params, batch_stats, images, *, train: bool, rngs: dict, bound_axis=None):
        """(logits, new batch_stats); axes other than `bound_axis` get a size-1 binding."""
        out, stats = self.apply_output(
            params, batch_stats, images, train=train, rngs=rngs, bound_axis=bound_axis
        )
        return out.logits, stats

    def apply_output(
        self, params, batch_stats, images, *, train: bool, rngs: dict, bound_axis=None
    ) -> tuple[Output, object]:
        """`apply` with the whole output (`Output`): logits, extras and the module's own."""

        def call(params, batch_stats, images, rngs):
            out, stats = self._apply(params, batch_stats, images, train=train, rngs=rngs)
            return model_output(out, self.name), stats

        for axis in self.axis_names:
            if axis != bound_axis:
                call = _bind_axis(call, axis)
        return call(params, batch_stats, images, rngs)

    def check(self, image_shape: Sequence[int], num_classes: int) -> None:
        """Runs the contract on abstract values: init, an eval-mode and a train-mode call,
        and the gradient, before any work is done. Discovers RNG streams and axis names."""
        key = prng.key(0)
        images = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
        params, stats = self._at("init", lambda: jax.eval_shape(self.init, key, images))
        if not jax.tree.leaves(params):
            raise ModelError(f"model {self.name!r} has no trainable parameters")
        self.has_batch_stats = bool(jax.tree.leaves(stats))
        for train in (False, True):
            mode = "train" if train else "eval"
            logits = self._probe(
                mode, lambda train=train: self._abstract_call(params, stats, images, train)
            )
            if logits.shape != (2, num_classes):
                raise ModelError(
                    f"model {self.name!r} returned logits of shape {tuple(logits.shape)} in "
                    f"{mode} mode for a batch of 2; the dataset has {num_classes} classes, so "
                    f"(2, {num_classes}) is expected (a `num_classes` field is filled in)"
                )

        def grad(params, stats, images, key):
            def loss(params):
                logits, _ = self.apply(params, stats, images, train=True, rngs=self.rngs(key))
                return logits.astype(jnp.float32).sum()

            return jax.grad(loss)(params)

        self._at(
            "gradient of the train-mode call",
            lambda: jax.eval_shape(grad, params, stats, images, key),
        )

    def _abstract_call(self, params, stats, images, train: bool):
        def call(params, stats, images, key):
            return self.apply(params, stats, images, train=train, rngs=self.rngs(key))[0]

        return jax.eval_shape(call, params, stats, images, prng.key(0))

    def _probe(self, mode: str, call: Callable):
        """`call()`, learning an RNG stream or an axis name from each failure it explains."""
        for _ in range(_MAX_PROBES):
            try:
                return call()
            except flax_errors.InvalidRngError as e:
                stream = re.search(r'PRNG for "([^"]+)"', str(e))
                if not stream or stream.group(1) in self._rng_streams:
                    raise self._error(f"{mode}-mode call", e) from e
                self._rng_streams += (stream.group(1),)
            except NameError as e:
                axis = re.search(r"unbound axis name: (\w+)", str(e))
                if not axis or axis.group(1) in self.axis_names:
                    raise self._error(f"{mode}-mode call", e) from e
                self.axis_names += (axis.group(1),)
            except ModelError:
                raise
            except Exception as e:
                raise self._error(f"{mode}-mode call", e) from e
        raise ModelError(f"model {self.name!r}: its {mode}-mode call kept failing")

    def _at(self, point: str, call: Callable):
        try:
            return call()
        except ModelError:
            raise
        except Exception as e:
            raise self._error(point, e) from e

    def _error(self, point: str, e: Exception) -> ModelError:
        first = first_line(e, 300)
        return ModelError(
            f"model {self.name!r} failed at its {point}: {type(e).__name__}: {first}"
            + self._hint(first)
        )

    def _hint(self, message: str) -> str:
        """What the contract offers, where the failure says the module wanted something."""
        if "required" in message and "argument" in message:
            return (
                "; the contract calls a module with the images and, where its __call__ "
                "names them, a mode keyword (train, training or deterministic) and rngs"
            )
        return ""


def as_model(model: "Model | nn.Module") -> Model:
    """`model` itself, or a bare linen module instance put behind the contract."""
    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        return LinenModel(type(model).__name__, model)
    raise TypeError(f"expected a contract Model or a linen Module, got {type(model).__name__}")


def _bind_axis(fn: Callable, axis: str) -> Callable:
    """`fn` under a named axis of size 1: its collectives over `axis` become identities."""

    @functools.wraps(fn)
    def bound(*args):
        out = jax.vmap(fn, in_axes=None, axis_size=1, axis_name=axis)(*args)
        return jax.tree.map(lambda x: x[0], out)

    return bound


def _mode_of_call(fn) -> tuple[str | None, bool]:
    """(keyword, inverted) of a `__call__`'s mode keyword, or (None, False) if it has none."""
    parameters = parameters_of(fn)
    for name in MODE_NAMES + INVERTED_MODE_NAMES:
        if name in parameters:
            return name, name in INVERTED_MODE_NAMES
    return None, False


class LinenModel(Model):
    """A flax.linen module instance behind the contract."""

    def __init__(self, name: str, module: nn.Module):
        super().__init__(name)
        self.module = module
        self._call_kwarg, self._call_inverted = _mode_of_call(type(module).__call__)
        self._field = None
        if self._call_kwarg is None:
            fields = getattr(type(module), "__dataclass_fields__", {})
            self._field = next((f for f in MODE_NAMES + INVERTED_MODE_NAMES if f in fields), None)
        self._modules = {train: self._module_for(train) for train in (False, True)}

    def _module_for(self, train: bool) -> nn.Module:
        if self._field is None:
            return self.module
        return self.module.clone(**{self._field: train != (self._field in INVERTED_MODE_NAMES)})

    def call_kwargs(self, train: bool) -> dict:
        """The keyword `__call__` takes for the mode ({} when the mode is a field or absent)."""
        if self._call_kwarg is None:
            return {}
        return {self._call_kwarg: train != self._call_inverted}

    def module_for(self, train: bool) -> nn.Module:
        return self._modules[train]

    def init(self, key, images):
        variables = self._modules[False].init(key, images, **self.call_kwargs(False))
        return variables["params"], variables.get("batch_stats", {})

    def _apply(self, params, batch_stats, images, *, train, rngs):
        variables = {"params": params}
        if batch_stats:
            variables["batch_stats"] = batch_stats
        module, kwargs = self._modules[train], self.call_kwargs(train)
        if train and batch_stats:
            out, updates = module.apply(
                variables, images, **kwargs, rngs=rngs, mutable=["batch_stats"]
            )
            return out, updates["batch_stats"]
        return module.apply(variables, images, **kwargs, rngs=rngs), batch_stats


class NnxModel(Model):
    """A Flax NNX module, built by `build(rngs)`, run functionally."""

    def __init__(self, name: str, build: Callable[[nnx.Rngs], nnx.Module]):
        super().__init__(name)
        self._build = build
        self._template = None  # (graphdef, params, rng state, batch_stats) of a concrete build

    def _split(self, module: nnx.Module):
        if not isinstance(module, nnx.Module):
            raise ModelError(
                f"model {self.name!r}: building it returned {type(module).__name__}, "
                "not a flax module"
            )
        return nnx.split(module, nnx.Param, nnx.RngState, ...)

    def template(self):
        """The graph and state structure, from one concrete build (cached)."""
        if self._template is None:
            module = self._build(nnx.Rngs(0))
            self._template = self._split(module)
            self._call_kwarg, self._call_inverted = _mode_of_call(type(module).__call__)
            self._call_rngs = parameters_of(type(module).__call__).get("rngs")
        return self._template

    @property
    def module(self) -> nnx.Module:
        """A fresh concrete instance, for summaries."""
        return self._build(nnx.Rngs(0))

    @property
    def rng_streams(self) -> tuple[str, ...]:
        rng_state = self.template()[2]
        tags = {v.tag for v in jax.tree.leaves(rng_state, is_leaf=_is_rng_key) if _is_rng_key(v)}
        return ("dropout", *sorted(tags - {"dropout"}))

    def init(self, key, images):
        _, params, _, stats = self._split(self._build(nnx.Rngs(key)))
        return _to_pure(params), _to_pure(stats)

    def _apply(self, params, batch_stats, images, *, train, rngs):
        module = self.merged(params, batch_stats, train=train)
        out = self.call_merged(module, images, train=train, rngs=rngs)
        new_stats = _to_pure(nnx.split(module, nnx.Param, nnx.RngState, ...)[3])
        return out, (new_stats if train else batch_stats)

    def merged(self, params, batch_stats, *, train: bool) -> nnx.Module:
        """A module of this trace holding `params` and `batch_stats`, in `train`'s mode."""
        graphdef, params_t, rng_t, stats_t = self.template()
        params_s, stats_s = _from_pure(params_t, params), _from_pure(stats_t, batch_stats)
        rng_s = jax.tree.map(lambda v: v, rng_t)  # fresh variables, owned by this trace
        module = nnx.merge(graphdef, params_s, rng_s, stats_s)
        module.train() if train else module.eval()
        return module

    def call_merged(self, module: nnx.Module, images, *, train: bool, rngs: dict):
        """Calls a `merged` module as the contract does: its RNG streams reseeded from
        `rngs` (eval mode needs none), its mode keyword and call-time rngs given."""
        tags = {
            v.tag for v in jax.tree.leaves(nnx.state(module, nnx.RngState), is_leaf=_is_rng_key)
            if _is_rng_key(v)
        }  # fmt: skip
        if tags:
            base = rngs["dropout"]
            nnx.reseed(module, **{tag: rngs.get(tag, stream_key(base, tag)) for tag in tags})
        kwargs = {}
        if self._call_kwarg is not None:
            kwargs[self._call_kwarg] = train != self._call_inverted
        if self._call_rngs is not None:
            kwargs["rngs"] = self._call_time_rngs(rngs, train)
        return module(images, **kwargs)

    def _hint(self, message: str) -> str:
        if "rngs" not in message:
            return super()._hint(message)
        return (
            "; the contract gives RNG streams to an `rngs` argument of __call__ (an nnx.Rngs "
            "in train mode) and reseeds the rngs a module was built with"
        )

    def _call_time_rngs(self, rngs: dict, train: bool) -> nnx.Rngs | None:
        """What a `__call__(x, rngs=...)` gets (flax's current examples build `nnx.Dropout`
        without rngs and pass them at the call): an `nnx.Rngs` of the step's streams, with
        a "default" one for any other; None in eval mode where the argument is optional."""
        if not train and self._call_rngs.default is not inspect.Parameter.empty:
            return None
        base = rngs["dropout"]
        streams = {"default": stream_key(base, "default"), **rngs}
        return nnx.Rngs(**streams)


def parameters_of(fn) -> dict[str, inspect.Parameter]:
    """`fn`'s parameters by name; none where Python cannot read its signature."""
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def _is_rng_key(x) -> bool:
    return isinstance(x, nnx.RngKey)


def _to_pure(state: nnx.State) -> dict:
    """An nnx.State as a nested dict of arrays with string keys (as orbax stores them)."""

    def strings(tree):
        if isinstance(tree, dict):
            return {str(k): strings(v) for k, v in tree.items()}
        return tree

    return strings(nnx.to_pure_dict(state))


def _from_pure(template: nnx.State, pure: dict) -> nnx.State:
    """`template`'s structure with the values of `pure` (keys matched as strings)."""

    def values(shape, tree):
        if isinstance(shape, dict):
            return {k: values(v, tree[str(k)]) for k, v in shape.items()}
        return tree

    state = jax.tree.map(lambda v: v, template)  # a copy: replace_by_pure_dict mutates
    nnx.replace_by_pure_dict(state, values(nnx.to_pure_dict(template), pure))
    return state
