"""The metrics: defined once here, used by every step, the loop, checkpoints, writers and evaluate.

Each metric sums a per-example statistic computed from the logits, the labels and the
per-example loss (the train step's loss, label smoothing included; plain cross-entropy in
evaluation), and `reduce`s the split's sums and example count to its value: the mean for
most, and for one that is not a mean (macro F1) whatever its counts give. A step returns
masked *sums* (`batch_sums`), which add up exactly over padded last batches, devices and
hosts; the loop merges them on the host in float64, in step order (`Totals`), so the sums,
and hence a resumed run, do not depend on where it was interrupted. Adding a metric is one
entry in `METRICS`: it then appears in the train and test rows of metrics.jsonl, in
TensorBoard and in `evaluate`'s report, and `config.best_metric` may name it to rank the
checkpoints and drive early stopping. A loss's named terms (`training.losses`) ride in the
same sums under their own names.
"""

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

PerExample = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (logits, labels, loss)
COUNT = "count"  # the examples summed over; not itself a metric
ENSEMBLE = "ensemble_"  # prefix of a population's ensemble metrics (`ensemble_logits`)
STD, PER_REPLICA = "_std", "_per_replica"  # suffixes of a population's spread and values


def mean(sums: np.ndarray, count: float) -> float:
    return float(sums / count)


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    per_example: PerExample  # (logits, labels, per-example loss) -> (batch, *shape) values
    reduce: Callable[[np.ndarray, float], float] = mean  # (one model's sums, count) -> value
    rank: int = 0  # len(shape): the statistic's own axes (a population's sums add one)
    higher_is_better: bool = True


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


def class_counts(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per example, (3, classes) one-hots: right in its class, predicted, true."""
    num_classes = logits.shape[-1]
    predicted = jax.nn.one_hot(jnp.argmax(logits, -1), num_classes)
    true = jax.nn.one_hot(labels, num_classes)
    return jnp.stack([predicted * true, predicted, true], axis=1)


def macro_f1(counts: np.ndarray, count: float) -> float:
    """The mean over classes of F1 = 2 TP / (predicted + true), over the classes that were
    predicted or present (scikit-learn's `f1_score(average="macro")`)."""
    right, predicted, true = np.asarray(counts, np.float64)
    seen = (predicted + true) > 0
    return float(np.mean(2 * right[seen] / (predicted + true)[seen])) if seen.any() else 0.0


METRICS: list[Metric] = [
    Metric("loss", lambda logits, labels, loss: loss, higher_is_better=False),
    Metric("accuracy", lambda logits, labels, loss: top_k_correct(logits, labels, 1)),
    Metric("macro_f1", lambda logits, labels, loss: class_counts(logits, labels), macro_f1, 2),
]


def metric(name: str) -> Metric | None:
    """The metric `name` (a population's `ensemble_` ones too); None for a loss's term."""
    return next((m for m in METRICS if m.name == name.removeprefix(ENSEMBLE)), None)


def best_first(scores, higher_is_better: bool) -> np.ndarray:
    """A population's member indices, best first by `scores` (a NaN last, ties in index
    order): the one ranking of sweep.json, `export --member best` and PBT."""
    values = np.asarray(scores, np.float64)
    ranked = -values if higher_is_better else values
    return np.argsort(np.where(np.isnan(ranked), np.inf, ranked), kind="stable")


def ensemble_logits(logits: jax.Array) -> jax.Array:
    """The log of the replicas' averaged probabilities: (replicas, batch, classes) -> (batch,
    classes). Its softmax is the ensemble's prediction."""
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(logits.shape[0])


def names() -> list[str]:
    return [m.name for m in METRICS]


def batch_sums(
    logits: jax.Array,
    labels: jax.Array,
    loss: jax.Array,
    mask: jax.Array | None = None,
    terms: Mapping[str, jax.Array] | None = None,
) -> dict[str, jax.Array]:
    """{metric: masked sum over the batch, "count": examples counted}, on the device, and
    each of a loss's named `terms` (per-example values) summed likewise."""
    mask = jnp.ones(labels.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
    logits = logits.astype(jnp.float32)
    sums = {}
    for m in METRICS:
        values = m.per_example(logits, labels, loss)
        sums[m.name] = (values * mask.reshape(mask.shape + (1,) * m.rank)).sum(0)
    sums.update({name: (value * mask).sum() for name, value in (terms or {}).items()})
    return {**sums, COUNT: mask.sum()}


@dataclasses.dataclass(frozen=True)
class Totals:
    """Sums of every metric over the examples seen so far, merged on the host in float64.

    A population's sums are vectors, one entry per replica; `compute` then reports their
    mean under the metric's name, with `_std` (over replicas) and `_per_replica`.
    """

    sums: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    count: float = 0.0

    def merge(self, batches: Sequence[Mapping[str, object]]) -> "Totals":
        """Adds per-batch sums (device or host values) in order, one float64 add at a time."""
        sums = {name: np.array(value, np.float64) for name, value in self.sums.items()}
        count = self.count
        for batch in jax.device_get(list(batches)):
            for name, value in batch.items():
                if name == COUNT:
                    continue
                value = np.asarray(value, np.float64)
                sums[name] = sums[name] + value if name in sums else value.copy()
            # Every replica counts the same examples.
            count += float(np.asarray(batch[COUNT]).reshape(-1)[0])
        return Totals(sums, count)

    def compute(self) -> dict[str, float | list[float]]:
        """{metric: average} (NaN for an empty total); a population's also `_std` and
        `_per_replica`."""
        if not self.count:
            return {name: float("nan") for name in names()}
        out = {}
        order = names() + sorted(set(self.sums) - set(names()))
        for name, total in ((n, self.sums[n]) for n in order if n in self.sums):
            values = _reduce(name, np.asarray(total), self.count)
            out[name] = float(values.mean())
            if values.ndim:
                out[name + STD] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
                out[name + PER_REPLICA] = [float(v) for v in values]
        return out

    def to_json(self) -> dict:
        return {
            **{name: np.asarray(value).tolist() for name, value in self.sums.items()},
            COUNT: self.count,
        }

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
        sums = {k: np.asarray(v, np.float64) for k, v in stored.items() if k != COUNT}
        return cls(sums, float(stored.get(COUNT, 0.0)))


def _reduce(name: str, total: np.ndarray, count: float) -> np.ndarray:
    """The metric's value from its sums: one, or a population's (N,) (its sums have one
    more axis than the metric's own)."""
    found = metric(name) or Metric(name, per_example=None)  # a loss's term: its mean
    if total.ndim == found.rank:
        return np.asarray(found.reduce(total, count))
    return np.array([found.reduce(one, count) for one in total])


def mean_loss(sums: Mapping[str, jax.Array]) -> float:
    """One step's loss, averaged over its examples and any replicas (this syncs)."""
    return float(np.mean(np.asarray(sums["loss"])) / np.mean(np.asarray(sums[COUNT])))


def eval_sums(
    logits: jax.Array,
    labels: jax.Array,
    mask: jax.Array | None = None,
    terms: Mapping[str, jax.Array] | None = None,
) -> dict[str, jax.Array]:
    """An evaluation batch's sums (plain cross-entropy), with a loss's named `terms`. A
    population's logits (N, batch, classes) and terms (N, batch) give (N,) sums per metric,
    plus the ensemble's metrics as `ensemble_*`."""
    terms = dict(terms or {})

    def sums_of(logits, terms):
        return batch_sums(logits, labels, cross_entropy(logits, labels), mask, terms)

    if logits.ndim == 2:
        return sums_of(logits, terms)
    sums = jax.vmap(sums_of)(logits, terms)
    for name, value in sums_of(ensemble_logits(logits), {}).items():
        if name != COUNT:
            sums[ENSEMBLE + name] = value
    return sums


def evaluate_logits(
    logits: np.ndarray, labels: np.ndarray, terms: Mapping[str, np.ndarray] | None = None
) -> dict[str, float]:
    """Every metric over a whole split from its logits (a population's too), and a loss's
    per-example `terms`, as the eval step computes them. Compiled as one program: run op by
    op, each of its few dozen operations would be compiled on its own in a fresh process."""
    terms = {name: jnp.asarray(value) for name, value in (terms or {}).items()}
    compiled = _compiled_eval_sums(tuple(METRICS))
    sums = compiled(jnp.asarray(logits), jnp.asarray(labels), terms)
    return Totals().merge([sums]).compute()


@functools.lru_cache(maxsize=4)
def _compiled_eval_sums(defined: tuple[Metric, ...]):
    """`eval_sums` compiled, one function per set of defined metrics: its trace reads
    `METRICS`, and a fork may add a metric at run time, while JAX keeps a function's trace."""
    del defined  # the cache's key
    return jax.jit(lambda logits, labels, terms: eval_sums(logits, labels, terms=terms))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts per (true class, predicted class): rows are the true class."""
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return confusion
