"""The model contract: the modules people actually write, behind one functional interface.

The trainer, evaluate, predict and summary never call a module directly; they call a
`Model`:

  init(key, images)                                   -> (params, batch_stats)
  apply(params, batch_stats, images, *, train, rngs)  -> (logits, batch_stats)

Two kinds of module meet it (docs/custom_model.md has the user's side):
  * flax.linen modules (`linen_model.LinenModel`). The mode comes from a `train`/`training` (or
    inverted `deterministic`) keyword of `__call__`, else from a module field of one of
    those names, else the module has no train mode. BatchNorm statistics live in the
    "batch_stats" collection.
  * Flax NNX modules (`nnx_model.NnxModel`), run functionally: `nnx.merge` the graph with the state
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

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import errors as flax_errors

from lenet_jax import prng
from lenet_jax.errors import UserError, first_line
from lenet_jax.models.calls import bind_axis, stream_key

_MAX_PROBES = 8  # RNG streams plus axis names a module may reveal one at a time


class ModelError(UserError):
    """The module broke the contract, or failed inside, at a named contract point."""


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
        self._variables: dict[tuple, tuple] = {}  # image shape -> abstract (params, stats)

    # What each kind implements.

    def init(self, key: jax.Array, images: jax.Array):
        raise NotImplementedError

    def _apply(self, params, batch_stats, images, *, train: bool, rngs: dict):
        raise NotImplementedError

    # The one interface.

    def abstract_variables(self, image_shape: Sequence[int]) -> tuple:
        """(params, batch_stats) shapes for images of `image_shape`, nothing computed: init
        traced once per shape, for the contract, the loss check and the optimizer's groups."""
        image_shape = tuple(image_shape)
        if image_shape not in self._variables:
            images = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
            self._variables[image_shape] = jax.eval_shape(self.init, prng.key(0), images)
        return self._variables[image_shape]

    def abstract_params(self, image_shape: Sequence[int]):
        """The parameters' shapes for images of `image_shape` (nothing computed)."""
        return self.abstract_variables(image_shape)[0]

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
                call = bind_axis(call, axis)
        return call(params, batch_stats, images, rngs)

    def check(self, image_shape: Sequence[int], num_classes: int) -> None:
        """Runs the contract on abstract values: init, an eval-mode and a train-mode call,
        and the gradient, before any work is done. Discovers RNG streams and axis names."""
        images = jax.ShapeDtypeStruct((2, *image_shape), jnp.float32)
        params, stats = self._at("init", lambda: self.abstract_variables(image_shape))
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

    def _abstract_call(self, params, stats, images, train: bool):
        """The logits' shape, and in train mode the gradient's too, in one abstract trace
        (tracing a model is most of what the check costs); a failure that the forward
        pass alone does not repeat is the gradient's."""

        def call(params, stats, images, key):
            return self.apply(params, stats, images, train=train, rngs=self.rngs(key))[0]

        def logits_and_gradient(params, stats, images, key):
            def loss(params):
                logits = call(params, stats, images, key)
                return logits.astype(jnp.float32).sum(), logits

            return jax.grad(loss, has_aux=True)(params)[1]

        if not train:
            return jax.eval_shape(call, params, stats, images, prng.key(0))
        try:
            return jax.eval_shape(logits_and_gradient, params, stats, images, prng.key(0))
        except Exception as e:
            jax.eval_shape(call, params, stats, images, prng.key(0))  # raises the forward's
            raise self._error("gradient of the train-mode call", e) from e

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
