"""The metrics module: exact masked sums, the host merge, the old checkpoint carry, and a new
metric defined in one place showing up in metrics.jsonl, TensorBoard and evaluate."""

import jax.numpy as jnp
import numpy as np
import pytest

from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.report.inference import load_run, predict_split
from lenet_jax.training import loop as trainer
from lenet_jax.training import metrics
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.tensorboard import read_scalars


def test_batch_sums_respect_the_mask_exactly():
    logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    labels = jnp.array([1, 1, 1])
    loss = jnp.array([0.5, 0.25, 4.0])
    sums = metrics.batch_sums(logits, labels, loss, jnp.array([True, True, False]))
    counts = sums.pop("macro_f1")  # per class: right, predicted, true
    assert {k: float(v) for k, v in sums.items()} == {"loss": 0.75, "accuracy": 1.0, "count": 2.0}
    np.testing.assert_array_equal(counts, [[0, 1, 0], [1, 1, 0], [0, 2, 0]])


def test_macro_f1_is_the_mean_f1_of_the_classes_and_adds_up_over_batches_and_replicas():
    """Not a mean over examples: merged from per-class counts, whatever the batching."""
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(2, 50, 4)), rng.integers(0, 4, size=50)
    labels[labels == 3] = 2  # class 3 is never true: it counts where it is predicted
    for replica in range(2):
        predicted = logits[replica].argmax(-1)
        f1 = []
        for c in range(4):
            right = ((predicted == c) & (labels == c)).sum()
            denominator = (predicted == c).sum() + (labels == c).sum()
            if denominator:
                f1.append(2 * right / denominator)
        whole = metrics.evaluate_logits(logits, labels)
        assert whole["macro_f1_per_replica"][replica] == pytest.approx(np.mean(f1))
    mask = np.arange(64) < 50  # padded batches of 16, merged on the host
    padded = np.zeros((2, 64, 4)), np.zeros(64, np.int32)
    padded[0][:, :50], padded[1][:50] = logits, labels
    batches = [
        metrics.eval_sums(jnp.asarray(padded[0][:, i : i + 16]), jnp.asarray(padded[1][i : i + 16]),
                          jnp.asarray(mask[i : i + 16]))
        for i in range(0, 64, 16)
    ]  # fmt: skip
    merged = metrics.Totals().merge(batches).compute()
    for name in ("macro_f1", "macro_f1_per_replica", "ensemble_macro_f1", "accuracy"):
        assert merged[name] == pytest.approx(whole[name])


def test_top_k_breaks_ties_towards_lower_classes_as_argmax_does():
    logits = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    labels = jnp.array([0, 1, 2])
    np.testing.assert_array_equal(metrics.top_k_correct(logits, labels, 1), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(metrics.top_k_correct(logits, labels, 2), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(
        metrics.top_k_correct(logits, labels, 1),
        (jnp.argmax(logits, -1) == labels).astype(jnp.float32),
    )


def test_totals_merge_in_order_in_float64_and_compute_averages():
    steps = [
        {"loss": np.float32(1.5), "accuracy": 3.0, "count": 4.0},
        {"loss": 0.5, "accuracy": 1.0, "count": 4},
    ]
    totals = metrics.Totals().merge(steps[:1]).merge(steps[1:])
    assert totals.compute() == {"loss": 0.25, "accuracy": 0.5}
    assert metrics.Totals.from_json(totals.to_json(), batch_size=4) == totals
    assert np.isnan(metrics.Totals().compute()["loss"])


def test_a_carry_from_before_the_metrics_module_still_resumes():
    old = {"loss_sum": 1.5, "accuracy_sum": 0.75, "steps": 3}  # sums of per-step means
    totals = metrics.Totals.from_json(old, batch_size=64)
    assert totals.count == 192
    assert totals.compute() == pytest.approx({"loss": 0.5, "accuracy": 0.25})


TOP2 = metrics.Metric(
    "top2_accuracy", lambda logits, labels, loss: metrics.top_k_correct(logits, labels, 2)
)


def _in_top2(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """TOP2's reference in numpy: ties broken towards lower classes, as argmax does."""
    return (np.argsort(-logits, axis=-1, kind="stable")[:, :2] == labels[:, None]).any(-1)


def test_a_metric_defined_in_one_place_reaches_every_output(tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", [*metrics.METRICS, TOP2])  # the one place
    tiny_config.num_epochs = 1
    result = trainer.train_and_evaluate(tiny_config, str(tmp_path))
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [r["split"] for r in rows] == ["train", "test"]
    for row in rows:
        assert row["accuracy"] <= row["top2_accuracy"] <= 1
    assert result.test["top2_accuracy"] == rows[-1]["top2_accuracy"]
    scalars = read_scalars(str(tmp_path / "tensorboard"))
    assert scalars["test/top2_accuracy"] == [(8, pytest.approx(rows[-1]["top2_accuracy"]))]
    assert scalars["train/top2_accuracy"] == [(8, pytest.approx(rows[0]["top2_accuracy"]))]
    report = evaluate_workdir(str(tmp_path), "latest", draw_plots=False)
    logits, labels = predict_split(load_run(str(tmp_path), "latest"))
    assert report["top2_accuracy"] == pytest.approx(_in_top2(logits, labels).mean())
    assert report["top2_accuracy"] == pytest.approx(rows[-1]["top2_accuracy"])


def test_a_metric_added_after_a_whole_split_was_scored_is_scored_next_time(monkeypatch):
    """`evaluate_logits` is compiled: a metric added later must not meet a stale trace."""
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 5, 40)
    assert "top2_accuracy" not in metrics.evaluate_logits(logits, labels)
    monkeypatch.setattr(metrics, "METRICS", [*metrics.METRICS, TOP2])
    scored = metrics.evaluate_logits(logits, labels)
    assert scored["top2_accuracy"] == pytest.approx(_in_top2(logits, labels).mean())
