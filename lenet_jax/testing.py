"""A contract check for fork authors: one call in their own pytest says whether a module
trains here, before any run.

    from lenet_jax.testing import check_model

    def test_my_net_meets_the_contract():
        check_model("my_models.net:Net", image_shape=(28, 28, 1), num_classes=10)

`check_model` builds the module the way `train` does (the registry, the config's model
fields, the contract), then checks on real arrays what a run relies on: init and both
modes give `(batch, num_classes)` logits; the same key gives the same train-mode output and
eval mode ignores the key; BatchNorm statistics move in train mode only; a few steps on a
fixed batch lower the loss (the run's loss: `loss`, as `config.loss` names it, checked
against the module's output first); and the same seed trains to the same parameters, bit
for bit. A failure is an `AssertionError` naming the check, or the one-line error `train`
would give.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lenet_jax import prng
from lenet_jax.models import Model, build_model
from lenet_jax.training import losses as losses_lib


@dataclasses.dataclass(frozen=True)
class ContractReport:
    """What the check learned about the module."""

    num_params: int
    rng_streams: tuple[str, ...]
    has_batch_stats: bool
    axis_names: tuple[str, ...]
    losses: tuple[float, ...]  # the train-mode loss on the fixed batch at each step


def check_model(
    name: str,
    *,
    image_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    fields: dict | None = None,
    steps: int = 10,
    batch: int = 16,
    learning_rate: float = 1e-3,
    loss: str = "cross_entropy",
    aux_loss_weight: float = 0.0,
) -> ContractReport:
    """Checks that the module `name` (a registered name or `package.module:attr`), built
    with the config model `fields`, meets the contract and trains under `loss` (with
    `aux_loss_weight`); returns what it learned."""
    config = ml_collections.ConfigDict({"name": name, **(fields or {})})
    model = build_model(config, num_classes=num_classes)
    model.check(image_shape, num_classes)
    loss_fn = losses_lib.resolve(
        ml_collections.ConfigDict(
            {"loss": loss, "label_smoothing": 0.0, "aux_loss_weight": aux_loss_weight}
        )
    )
    losses_lib.check(loss_fn, model, image_shape, num_classes)
    images = jax.random.normal(prng.key(1), (batch, *image_shape))
    labels = jax.random.randint(prng.key(2), (batch,), 0, num_classes)
    # Compiled, as the trainer inits: op by op, a deep module's init takes seconds.
    params, stats = jax.jit(model.init)(prng.key(0), images[:1])
    _check_calls(model, params, stats, images, num_classes)
    losses = _train(model, loss_fn, params, stats, images, labels, steps, learning_rate)
    again = _train(model, loss_fn, params, stats, images, labels, steps, learning_rate)
    assert losses == again, "the same key must train to the same losses, bit for bit"
    assert losses[-1] < losses[0], f"{steps} steps on one fixed batch did not lower the loss"
    return ContractReport(
        num_params=sum(x.size for x in jax.tree.leaves(params)),
        rng_streams=model.rng_streams,
        has_batch_stats=model.has_batch_stats,
        axis_names=model.axis_names,
        losses=losses,
    )


def _call(model: Model, params, stats, images, train: bool, seed: int):
    rngs = model.rngs(prng.key(seed))
    return jax.jit(lambda p, s, x: model.apply(p, s, x, train=train, rngs=rngs))(
        params, stats, images
    )


def _check_calls(model: Model, params, stats, images, num_classes: int) -> None:
    shape = (images.shape[0], num_classes)
    eval_a, eval_stats = _call(model, params, stats, images, train=False, seed=3)
    eval_b, _ = _call(model, params, stats, images, train=False, seed=4)
    chex.assert_shape(eval_a, shape)
    chex.assert_trees_all_equal(eval_a, eval_b, custom_message="eval mode must ignore the key")
    chex.assert_trees_all_equal(
        eval_stats, stats, custom_message="eval mode must not update batch statistics"
    )
    train_a, train_stats = _call(model, params, stats, images, train=True, seed=3)
    train_b, _ = _call(model, params, stats, images, train=True, seed=3)
    chex.assert_shape(train_a, shape)
    chex.assert_trees_all_equal(
        train_a, train_b, custom_message="the same key must give the same train-mode output"
    )
    chex.assert_tree_all_finite((eval_a, train_a))
    if model.has_batch_stats:
        moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), train_stats, stats)
        assert any(jax.tree.leaves(moved)), "train mode must update the batch statistics"


def _train(
    model: Model,
    loss: losses_lib.Loss,
    params,
    stats,
    images,
    labels,
    steps: int,
    learning_rate: float,
):
    """The train-mode loss on the fixed batch at each of `steps` Adam steps."""
    tx = optax.adam(learning_rate)

    @jax.jit
    def step(params, opt_state, stats, key):
        def objective(params):
            out, new_stats = model.apply_output(
                params, stats, images, train=True, rngs=model.rngs(key)
            )
            return loss(out, labels).objective, new_stats

        (value, new_stats), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, new_stats, value

    opt_state, values = tx.init(params), []
    for i in range(steps):
        params, opt_state, stats, value = step(params, opt_state, stats, prng.key(10 + i))
        values.append(float(value))
    return tuple(values)
