"""The loss seam: what the train step minimises, named by `config.loss`.

A loss is a function `fn(output, labels, mask)` returning `loss` or `(loss, terms)`:
  * `output` is the model's whole output (`models.contract.Output`): `.logits`, `.extras`
    (the named rest of a tuple or dict output) and `.raw` (the module's output unchanged);
  * `labels` the (batch,) integer classes, `mask` (batch,) booleans, False for the padding
    of a last evaluation batch (all True in training);
  * `loss` per-example values (batch,), or a scalar: their mean over the masked examples;
  * `terms` {name: per-example values or a scalar}: reported under their names beside
    the metrics in metrics.jsonl, TensorBoard and `evaluate` (train rows from train-mode
    calls, test rows from eval-mode ones), never minimised unless the loss adds them in.

`config.loss` names a built-in (`LOSSES`) or a fork's `package.module:function`. The
metrics (accuracy, the test rows' loss) stay computed from the logits, so a custom loss
changes what is minimised and reported as the train loss, not how runs are compared.
`check` runs the loss once on the model's abstract output, before anything is written.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from lenet_jax import prng
from lenet_jax.errors import UserError, first_line
from lenet_jax.imports import import_attribute
from lenet_jax.models.contract import Model, Output
from lenet_jax.training import metrics
from lenet_jax.training.sweep_optim import WithValues

LossFn = Callable[[Output, jax.Array, jax.Array], object]


def auxiliary_terms(output: Output) -> dict[str, jax.Array]:
    """The extras a built-in loss reports and weighs in: those named `*loss` (aux_loss,
    z_loss, load_balancing_loss, ...) that are a scalar or one value per example."""
    batch = output.logits.shape[0]
    return {
        name: value
        for name, value in output.extras.items()
        if name.endswith("loss") and jnp.ndim(value) in (0, 1) and jnp.size(value) in (1, batch)
    }


def cross_entropy(*, label_smoothing: float = 0.0, aux_loss_weight: float = 0.0) -> LossFn:
    """Softmax cross-entropy against the (smoothed) labels, plus `aux_loss_weight` times
    each auxiliary loss the model returns (`auxiliary_terms`), which are reported as terms
    whatever the weight."""

    def loss(output: Output, labels, mask):
        per_example = metrics.cross_entropy(output.logits, labels, label_smoothing)
        terms = auxiliary_terms(output)
        for value in terms.values():
            per_example = per_example + aux_loss_weight * jnp.asarray(value, jnp.float32)
        return per_example, terms

    return loss


def _cross_entropy_from(config: ml_collections.ConfigDict) -> LossFn:
    return cross_entropy(
        label_smoothing=config.label_smoothing, aux_loss_weight=config.aux_loss_weight
    )


# The built-in losses: config.loss name -> the loss its config fields make.
LOSSES: dict[str, Callable[[ml_collections.ConfigDict], LossFn]] = {
    "cross_entropy": _cross_entropy_from,
}


class LossError(UserError):
    """config.loss names no loss, or its loss breaks the seam's contract."""


class Value(NamedTuple):
    """A loss's value on one batch, in the step's terms (a pytree: it leaves `grad`)."""

    objective: jax.Array  # the scalar the gradient is taken of
    per_example: jax.Array  # (batch,): the reported train loss, summed under the mask
    terms: dict[str, jax.Array]  # {name: (batch,)}, likewise


@dataclasses.dataclass(frozen=True)
class Loss:
    """A loss function with the name it was configured by."""

    name: str
    fn: LossFn
    # A built-in's loss with a sweep's member's values of its fields (label_smoothing):
    # values -> the function. None for a fork's loss, whose fields a sweep cannot vary.
    with_values: Callable[[Mapping[str, jax.Array]], LossFn] | None = None

    def __call__(
        self, output: Output, labels: jax.Array, mask: jax.Array | None = None, values=None
    ) -> Value:
        """The loss on a batch; `mask` None in training (every example counts); `values`
        a sweep's member's (`sweep_optim.swept_values`), or None."""
        batch = labels.shape[0]
        given = jnp.ones((batch,), bool) if mask is None else mask
        fn = self.fn if values is None or self.with_values is None else self.with_values(values)
        loss, terms = _split(fn(output, labels, given))
        loss = jnp.asarray(loss, jnp.float32)
        if loss.ndim == 0:
            objective = loss
        elif mask is None:
            objective = loss.mean()
        else:
            weights = mask.astype(jnp.float32)
            objective = (loss * weights).sum() / jnp.maximum(weights.sum(), 1.0)
        per_example = lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (batch,))  # noqa: E731
        return Value(
            objective=objective,
            per_example=per_example(loss),
            terms={name: per_example(value) for name, value in terms.items()},
        )


def _split(returned) -> tuple[object, Mapping]:
    if isinstance(returned, tuple) and len(returned) == 2 and isinstance(returned[1], Mapping):
        return returned
    return returned, {}


def resolve(config: ml_collections.ConfigDict) -> Loss:
    """The loss `config.loss` names: a built-in made from its config fields, or a fork's
    `package.module:function`, used as it is."""
    name = config.loss
    if not isinstance(name, str) or not name:
        raise LossError(
            f"config.loss={name!r}: expected one of {sorted(LOSSES)} or 'package.module:function'"
        )
    if ":" not in name:
        if name not in LOSSES:
            raise LossError(
                f"config.loss: unknown loss {name!r}; known: {sorted(LOSSES)} or "
                "'package.module:function'"
            )
        make = LOSSES[name]
        return Loss(name, make(config), lambda values: make(WithValues(config, values)))
    wanted = "a function (output, labels, mask) -> loss or (loss, terms)"
    fn = import_attribute(name, "loss", expected=wanted, error=LossError)
    if not callable(fn):
        module_name, _, attr = name.partition(":")
        raise LossError(
            f"config.loss={name!r}: {module_name!r} has a {type(fn).__name__} as its {attr!r}; "
            f"expected {wanted}"
        )
    return Loss(name, fn)


def check(loss: Loss, model: Model, image_shape, num_classes: int) -> None:
    """Runs `loss` on the model's abstract train- and eval-mode output (no FLOPs): a
    failure, a loss or term of the wrong shape, or a term named like a metric is one line
    naming config.loss."""
    batch = 2
    images = jax.ShapeDtypeStruct((batch, *image_shape), jnp.float32)
    labels = jax.ShapeDtypeStruct((batch,), jnp.int32)
    mask = jax.ShapeDtypeStruct((batch,), jnp.bool_)
    params, stats = model.abstract_variables(image_shape)
    for train in (True, False):
        mode = "train" if train else "eval"

        def call(params, stats, images, labels, mask, key, train=train):
            out, _ = model.apply_output(params, stats, images, train=train, rngs=model.rngs(key))
            return _split(loss.fn(out, labels, mask))

        try:
            value, terms = jax.eval_shape(call, params, stats, images, labels, mask, prng.key(0))
        except UserError:
            raise
        except Exception as e:
            raise LossError(
                f"config.loss={loss.name!r} failed on the model's {mode}-mode output: "
                f"{type(e).__name__}: {first_line(e, 300)}"
            ) from e
        _check_shape(loss.name, "its loss", value, batch)
        for term, shape in terms.items():
            _check_term_name(loss.name, term)
            _check_shape(loss.name, f"its term {term!r}", shape, batch)


def _check_shape(name: str, what: str, value, batch: int) -> None:
    shape = getattr(value, "shape", None)
    if shape not in ((), (batch,)):
        got = f"shape {tuple(shape)}" if shape is not None else type(value).__name__
        raise LossError(
            f"config.loss={name!r}: {what} has {got} for a batch of {batch}; expected a "
            f"scalar or one value per example ({batch},)"
        )


def _check_term_name(name: str, term) -> None:
    reserved = {*metrics.names(), metrics.COUNT}
    if not isinstance(term, str) or term in reserved or term.startswith(metrics.ENSEMBLE):
        raise LossError(
            f"config.loss={name!r}: term name {term!r} is not allowed; a term is named by a "
            f"string other than {sorted(reserved)} that does not start with "
            f"{metrics.ENSEMBLE!r}"
        )
