"""Losses as a fork writes them for `config.loss=fork_losses:<name>`: good ones, and
ones that break the seam (the tests' bad inputs)."""

import jax
import jax.numpy as jnp
import optax


def _cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def focal(output, labels, mask):
    """Lin et al.'s focal loss (gamma 2) per example, reporting plain cross-entropy."""
    cross_entropy = _cross_entropy(output.logits, labels)
    p_label = jnp.exp(-cross_entropy)
    return (1.0 - p_label) ** 2 * cross_entropy, {"cross_entropy": cross_entropy}


def masked_mean_with_entropy(output, labels, mask):
    """A scalar loss (the mean over the real examples), and the predictions' entropy."""
    cross_entropy = jnp.where(mask, _cross_entropy(output.logits, labels), 0.0)
    probs = jax.nn.softmax(output.logits.astype(jnp.float32))
    entropy = -(probs * jnp.log(probs + 1e-12)).sum(-1)
    return cross_entropy.sum() / mask.sum(), {"entropy": entropy}


def logits_not_a_loss(output, labels, mask):
    return output.logits


def term_named_accuracy(output, labels, mask):
    return _cross_entropy(output.logits, labels), {"accuracy": jnp.zeros(())}


def wants_an_extra(output, labels, mask):
    return _cross_entropy(output.logits, labels) + output.extras["aux_loss"]


not_a_function = 3
