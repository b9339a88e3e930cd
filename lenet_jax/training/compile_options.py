"""The XLA options the run's steps are compiled with: on the CPU backend, which library runs
convolutions and reductions (`config.cpu_compiler_options`).

jaxlib 0.12's XLA:CPU hands convolutions and reductions to YNNPACK by default. Its
convolutions are slower than XLA's own emitters on the CPUs measured, and so are its
reductions, except BatchNorm's statistics (the README's Performance section has the
figures). The options are set per jit (`compiler_options=`), not through
`XLA_FLAGS`: a user's own flags still apply, other backends are untouched, and an option
this jaxlib does not know is dropped with one warning instead of aborting the process, as
an unknown name in `XLA_FLAGS` does.

  auto         the measured best for the installed jaxlib on CPU (`AUTO_CPU_OPTIONS`, or
               `AUTO_CPU_OPTIONS_BATCH_NORM` for a model that keeps batch statistics)
  xla_default  XLA's own defaults
  {...}        a JSON object of XLA debug options, e.g.
               '{"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}'
"""

import functools
import importlib.metadata
import json
import os
import sys

import jax
import jax.numpy as jnp

from lenet_jax.errors import UserError, first_line

YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
# YNNPACK keeps the dots, where it is fast; XLA's emitters take convolutions and reductions.
AUTO_CPU_OPTIONS = {YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
# With BatchNorm, YNNPACK's reductions (the batch statistics) are the faster ones: it keeps
# those too.
AUTO_CPU_OPTIONS_BATCH_NORM = {
    YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
}
NAMED_CHOICES = {"auto": AUTO_CPU_OPTIONS, "xla_default": {}}
FIELD = "cpu_compiler_options"


def parse(choice: str) -> dict:
    """The options `choice` names (a name of `NAMED_CHOICES` or a JSON object), on any
    backend; a one-line error naming the field otherwise."""
    if choice in NAMED_CHOICES:
        return dict(NAMED_CHOICES[choice])
    try:
        options = json.loads(choice)
    except (TypeError, ValueError):
        options = None
    if not isinstance(options, dict) or not all(
        isinstance(v, str | bool | int | float) for v in options.values()
    ):
        raise UserError(
            f"config.{FIELD}={choice!r} is not allowed; expected {list(NAMED_CHOICES)} or a "
            'JSON object of XLA options such as \'{"xla_cpu_enable_fast_math": false}\''
        )
    return options


def for_backend(choice: str, backend: str | None = None, *, batch_norm: bool = False) -> dict:
    """The options to compile with on `backend` (default: JAX's): `choice`'s on CPU (`auto`
    for a model with `batch_norm` statistics: `AUTO_CPU_OPTIONS_BATCH_NORM`), less those the
    user's `XLA_FLAGS` already set and those this jaxlib does not know; none on other
    backends."""
    options = parse(choice)
    if choice == "auto" and batch_norm:
        options = dict(AUTO_CPU_OPTIONS_BATCH_NORM)
    if (backend or jax.default_backend()) != "cpu":
        return {}
    user_flags = os.environ.get("XLA_FLAGS", "")
    options = {k: v for k, v in options.items() if f"--{k}=" not in user_flags}
    return {k: v for k, v in options.items() if _known(k, v)}


@functools.cache
def _known(name: str, value) -> bool:
    """Whether this jaxlib accepts `name=value` (a trivial program compiled with it, once per
    process); warns once when it does not."""
    probe = jax.jit(lambda x: x + 1).lower(jnp.zeros((), jnp.float32))
    try:
        probe.compile(compiler_options={name: value})
    except Exception as e:  # XLA says INVALID_ARGUMENT for an unknown name or value
        reason = first_line(e)
        print(
            f"warning: config.{FIELD}: jaxlib {importlib.metadata.version('jaxlib')} does not "
            f"accept {name}={value!r} ({reason}); compiling with XLA's default for it",
            file=sys.stderr,
            flush=True,
        )
        return False
    return True


def jit(fn, options: dict, **kwargs):
    """`jax.jit(fn, **kwargs)` compiled with `options`."""
    return jax.jit(fn, compiler_options=options or None, **kwargs)


def pmap(fn, options: dict, **kwargs):
    """`jax.pmap(fn, **kwargs)` compiled with `options` (`PmapWithOptions`), or plain
    `jax.pmap` without any."""
    mapped = jax.pmap(fn, **kwargs)
    return PmapWithOptions(mapped, options) if options else mapped


class PmapWithOptions:
    """A pmapped function compiled with XLA options: pmap takes no compile options, so each
    new argument signature is lowered and compiled ahead of time with them."""

    def __init__(self, mapped, options: dict):
        self._mapped, self._options, self._compiled = mapped, options, {}

    def compile(self, *args) -> jax.stages.Compiled:
        """The program for `args`' signature (tree, shapes, dtypes), compiled once."""
        leaves, tree = jax.tree.flatten(args)
        signature = (tree, tuple((jnp.shape(x), jnp.result_type(x)) for x in leaves))
        if signature not in self._compiled:
            lowered = self._mapped.lower(*args)
            self._compiled[signature] = lowered.compile(compiler_options=self._options)
        return self._compiled[signature]

    def __call__(self, *args):
        return self.compile(*args)(*args)


# LLVM's optimisation level for programs that run once (init, a warm start's state). Level 1
# compiles them several times faster than the default 2, and a single call gains nothing from
# the slower passes. Random draws keep their bits; a data-dependent init (airbench's
# whitening) may sum in another order, so it matches plain `jax.jit` to float32 rounding.
RUN_ONCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def compile_once(fn, *args, options: dict | None = None) -> jax.stages.Compiled:
    """`jax.jit(fn)` for `args`, compiled for a single call: `RUN_ONCE_COMPILER_OPTIONS`
    over the run's own `options`."""
    options = {**(options or {}), **RUN_ONCE_COMPILER_OPTIONS}
    return jax.jit(fn).lower(*args).compile(compiler_options=options)


def run_once(fn, *args, options: dict | None = None):
    """`jax.jit(fn)(*args)`, compiled for that one call (`compile_once`)."""
    return compile_once(fn, *args, options=options)(*args)
