"""The metrics: defined once here, used by every step, the loop, checkpoints, writers and evaluate.

Each metric is an average over examples of a per-example value computed from the logits,
the labels and the per-example loss (the train step's loss, label smoothing included; plain
cross-entropy in evaluation). A step returns masked *sums* (`batch_sums`), which add up
exactly over padded last batches, devices and hosts; the loop merges them on the host in
float64, in step order (`Totals`), so the sums, and hence a resumed run, do not depend on
where it was interrupted. Adding a metric is one entry in `METRICS`: it then appears in the
train and test rows of metrics.jsonl, in TensorBoard and in `evaluate`'s report.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

PerExample = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (logits, labels, loss)
COUNT = "count"  # the examples summed over; not itself a metric


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    per_example: PerExample  # (logits, labels, per-example loss) -> (batch,) values


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """Per-example softmax cross-entropy against integer labels: the loss every step uses."""
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """1.0 where the label is among the `k` largest logits (ties broken towards low classes)."""
    label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)
    ahead = (logits > label_logit).sum(-1)
    tied_before = (logits == label_logit) & (jnp.arange(logits.shape[-1]) < labels[:, None])
    return (ahead + tied_before.sum(-1) < k).astype(jnp.float32)


METRICS: list[Metric] = [
    Metric("loss", lambda logits, labels, loss: loss),
    Metric("accuracy", lambda logits, labels, loss: top_k_correct(logits, labels, 1)),
]


def names() -> list[str]:
    return [m.name for m in METRICS]


def batch_sums(
    logits: jax.Array, labels: jax.Array, loss: jax.Array, mask: jax.Array | None = None
) -> dict[str, jax.Array]:
    """{metric: masked sum over the batch, "count": examples counted}, on the device."""
    mask = jnp.ones(labels.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
    logits = logits.astype(jnp.float32)
    sums = {m.name: (m.per_example(logits, labels, loss) * mask).sum() for m in METRICS}
    return {**sums, COUNT: mask.sum()}


@dataclasses.dataclass(frozen=True)
class Totals:
    """Sums of every metric over the examples seen so far, merged on the host in float64."""

    sums: Mapping[str, float] = dataclasses.field(default_factory=dict)
    count: float = 0.0

    def merge(self, batches: Sequence[Mapping[str, object]]) -> "Totals":
        """Adds per-batch sums (device or host values) in order, one float64 add at a time."""
        sums = {name: float(self.sums.get(name, 0.0)) for name in names()}
        count = self.count
        for batch in jax.device_get(list(batches)):
            for name in sums:
                sums[name] += float(batch[name])
            count += float(batch[COUNT])
        return Totals(sums, count)

    def compute(self) -> dict[str, float]:
        """{metric: average}; NaN for an empty total."""
        return {name: self.sums.get(name, 0.0) / self.count if self.count else float("nan")
                for name in names()}  # fmt: skip

    def to_json(self) -> dict:
        return {**{name: float(value) for name, value in self.sums.items()}, COUNT: self.count}

    @classmethod
    def from_json(cls, stored: Mapping[str, float], *, batch_size: int) -> "Totals":
        """The inverse of `to_json`, also reading checkpoints written before this module.

        Those held the epoch's running sums of per-step means ("loss_sum", "accuracy_sum",
        "steps"); a step's mean times its batch size is its sum.
        """
        if "steps" in stored and COUNT not in stored:
            sums = {
                name.removesuffix("_sum"): value * batch_size
                for name, value in stored.items()
                if name.endswith("_sum")
            }
            return cls(sums, float(stored["steps"] * batch_size))
        return cls({k: v for k, v in stored.items() if k != COUNT}, float(stored.get(COUNT, 0.0)))


def evaluate_logits(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric over a whole split from its logits, as the eval step computes them."""
    loss = cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    return Totals().merge([batch_sums(jnp.asarray(logits), jnp.asarray(labels), loss)]).compute()
