"""A Flax NNX module behind the model contract (`models.contract`), run functionally:
`nnx.merge` the graph with the state each step, `train()`/`eval()` it, reseed its RNG streams
from the step key, call it, `nnx.split` the new statistics back out. `nnx.Param`s are the
params and every other non-RNG variable (BatchStat, ...) the batch_stats, both as plain
nested dicts, so checkpoints hold NNX models the way they hold linen ones."""

import inspect
from collections.abc import Callable

import jax
from flax import nnx

from lenet_jax.models.calls import mode_of_call, parameters_of, stream_key
from lenet_jax.models.contract import Model, ModelError


class NnxModel(Model):
    """A Flax NNX module, built by `build(rngs)`, run functionally."""

    def __init__(self, name: str, build: Callable[[nnx.Rngs], nnx.Module]):
        super().__init__(name)
        self._build = build
        self._template = None  # (graphdef, params, rng state, batch_stats) of an abstract build

    def _split(self, module: nnx.Module):
        if not isinstance(module, nnx.Module):
            raise ModelError(
                f"model {self.name!r}: building it returned {type(module).__name__}, "
                "not a flax module"
            )
        return nnx.split(module, nnx.Param, nnx.RngState, ...)

    def template(self):
        """The graph and state structure, from one abstract build (cached): shapes only,
        as every value is replaced (parameters and statistics by the state's, RNG keys
        reseeded per call). Built concretely, each initializer would run op by op, and
        compile on its own, outside any jit: over a second for a small CNN."""
        if self._template is None:
            module = nnx.eval_shape(lambda: self._build(nnx.Rngs(0)))
            self._template = self._split(module)
            self._call_kwarg, self._call_inverted = mode_of_call(type(module).__call__)
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
