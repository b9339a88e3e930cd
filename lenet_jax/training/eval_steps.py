"""Pure eval, score and predict steps: eval mode, the same normalisation as training
(inside the compiled step: the host moves bytes), test-time augmentation where the config
asks, the metrics' masked sums for evaluation. Safe to jit, pmap or shard.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lenet_jax import prng
from lenet_jax.models.contract import Model, Output
from lenet_jax.models.linen_model import as_model
from lenet_jax.training import metrics, replicas
from lenet_jax.training.augment import tta_views
from lenet_jax.training.losses import Loss
from lenet_jax.training.state import TrainState
from lenet_jax.training.steps import normalize


def make_eval_step(
    model: Model,
    *,
    num_replicas: int = 1,
    replica_loop: str = "vmap",
    loss: Loss | None = None,
    **forward_options,
):
    """Returns `eval_step(state, images, labels, mask) -> (metric sums, predicted classes)`,
    from `make_forward`'s eval-mode output (`forward_options`: normalisation, dtype, axis,
    test-time augmentation).

    Sums (not means) so padded final batches and device shards combine exactly; the
    predictions (argmax, int32) give the plots their confusion matrix without a second
    pass over the split. For a population (`num_replicas` > 1) the sums are per replica,
    plus the ensemble's (averaged probabilities) as `ensemble_*`, whose classes are the
    predictions. With `loss`, its named terms on the eval-mode output are summed too.
    """
    score = replicas.vectorize_predict(
        make_score_step(model, loss=loss, **forward_options), num_replicas, replica_loop
    )

    def eval_step(state: TrainState, images, labels, mask):
        logits, terms = score(state, images, labels, mask)
        combined = metrics.ensemble_logits(logits) if num_replicas > 1 else logits
        sums = metrics.eval_sums(logits, labels, mask, terms)
        return sums, jnp.argmax(combined, -1).astype(jnp.int32)

    return eval_step


def make_score_step(model: Model, *, loss: Loss | None = None, **forward_options):
    """Returns `score(state, images, labels, mask) -> (logits, terms)`: eval-mode logits
    (as `make_predict_step`) and `loss`'s per-example named terms ({} without a loss)."""
    forward = make_forward(model, **forward_options)

    def score(state: TrainState, images, labels, mask):
        out = forward(state, images)
        terms = loss(out, labels, mask).terms if loss is not None else {}
        return out.logits, terms

    return score


def make_predict_step(model: Model, **forward_options):
    """Returns `predict(state, uint8 images) -> float32 logits`, in eval mode: `make_forward`'s
    logits (with `tta`, the weighted mean over the test-time-augmented views)."""
    forward = make_forward(model, **forward_options)
    return lambda state, images: forward(state, images).logits


def make_forward(
    model: Model,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    compute_dtype=jnp.float32,
    axis_name: str | None = None,
    tta: str = "none",
):
    """Returns `forward(state, uint8 images) -> Output`, in eval mode, its arrays float32:
    with `tta`, every array of the output is the weighted mean over the views.

    The views go through the model as one vmapped call, not one call each: XLA:CPU runs a
    program holding several copies of a convolutional network several times slower than
    one copy over the stacked views (the README's "Evaluation's batch on the CPU"), and the
    vmap keeps each view's outputs apart, so even a batch-wide extra (a scalar) is the
    views' weighted mean as it would be one view at a time."""
    model = as_model(model)

    def forward(state: TrainState, images) -> Output:
        x = normalize(images, mean, std, compute_dtype)
        # Eval mode draws no randomness; a fixed key serves a module that asks anyway.
        rngs = model.rngs(prng.key(0))

        def apply(view) -> Output:
            out, _ = model.apply_output(
                state.params, state.batch_stats, view, train=False, rngs=rngs, bound_axis=axis_name
            )
            return jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), out)

        views = tta_views(x, tta)
        if len(views) == 1:
            return apply(x)
        weights = jnp.asarray([weight for weight, _ in views], jnp.float32)
        outputs = jax.vmap(apply)(jnp.stack([view for _, view in views]))
        return jax.tree.map(lambda v: jnp.tensordot(weights, v, axes=1), outputs)

    return forward
