"""A population in one compiled step: each replica trains as it would alone with its own
folded keys; rows, evaluate and predict report the replicas, their spread and the ensemble;
pmap and sharded runs equal the single-device one."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compiled_init

from lenet_jax.errors import UserError
from lenet_jax.predict import classify
from lenet_jax.report import inside
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.report.inference import combined_logits, load_run, predict_split
from lenet_jax.training import batches, replicas, steps
from lenet_jax.training.loop import train_and_evaluate
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.run import build_run
from lenet_jax.training.state import TrainState


def _population_config(config, n=3):
    config.num_replicas = n
    config.model.dropout_rate = 0.3  # each replica must draw its own masks
    return config


def _alone(run):
    """(init, step) of one model of `run` trained alone: its model, optimizer and
    normalisation, for a replica's own keys, each compiled once."""
    init = compiled_init(run.model, run.tx, run.dataset.image_shape, ema=run.has_ema)
    mean, std, ema = run.dataset.mean, run.dataset.std, run.ema_rule()
    return init, jax.jit(steps.make_train_step(run.model, run.tx, mean=mean, std=std, ema=ema))


def _replica(state, r: int):
    """Replica `r`'s state, sliced on the host (no slicing op compiled for each leaf)."""
    return replicas.select(jax.device_get(state), r)


@pytest.mark.parametrize("replica_loop", ["vmap", "map"])
def test_each_replica_trains_as_it_would_alone_with_its_folded_keys(tiny_config, replica_loop):
    """With BatchNorm and an EMA of the parameters, which each replica keeps too."""
    tiny_config.replica_loop, tiny_config.model.batch_norm = replica_loop, True
    tiny_config.ema_decay = 0.9
    run = build_run(_population_config(tiny_config))
    state = run.init_state()
    images, labels = run.dataset.train_images[:64], run.dataset.train_labels[:64]
    step = jax.jit(run.train_step())
    for _ in range(2):
        state, sums = step(state, images, labels, run.keys["train"])
    assert sums["loss"].shape == (3,)
    alone_init, alone_step = _alone(run)
    for r in range(3):
        alone = alone_init(run.keys["init"][r])
        for _ in range(2):
            alone, alone_sums = alone_step(alone, images, labels, run.keys["train"][r])
        replica = _replica(state, r)
        chex.assert_trees_all_close(replica.params, alone.params, atol=1e-6)
        chex.assert_trees_all_close(replica.batch_stats, alone.batch_stats, atol=1e-6)
        chex.assert_trees_all_close(replica.opt_state, alone.opt_state, atol=1e-6)
        chex.assert_trees_all_close(replica.ema_params, alone.ema_params, atol=1e-6)
        np.testing.assert_allclose(sums["loss"][r], alone_sums["loss"], rtol=1e-5)
    first, second = (jax.tree.leaves(_replica(state, r).params)[0] for r in (0, 1))
    assert not np.allclose(first, second)  # different inits


def _toy_step(state, images, labels, key):
    noise = jax.random.normal(key, state.params["w"].shape)
    w = state.params["w"] - 0.1 * (images.mean() + labels.mean()) * noise
    return state.replace(step=state.step + 1, params={"w": w}), {"loss": jnp.sum(w)}


def test_map_loops_over_the_replicas_and_vmap_vectorises_them_to_the_same_numbers():
    """The loop each `replica_loop` names (a scan over the replicas, or none), for the train
    step and for predictions, and the same numbers from both."""
    rng = np.random.default_rng(0)
    state = TrainState(
        step=jnp.int32(0),
        params={"w": jnp.asarray(rng.normal(size=(3, 4, 2)), jnp.float32)},
        opt_state={"count": jnp.zeros(3, jnp.int32)},
        batch_stats={},
    )
    images, labels = jnp.ones((5, 4)), jnp.arange(5.0)
    keys = replicas.replica_keys(jax.random.key(0), 3)
    predict = lambda replica, x: x @ replica.params["w"]  # noqa: E731
    outputs = {}
    for loop in ("vmap", "map"):
        step = replicas.vectorize_train_step(_toy_step, 3, own_data=False, loop=loop)
        logits = replicas.vectorize_predict(predict, 3, loop=loop)
        for fn, args in ((step, (state, images, labels, keys)), (logits, (state, images))):
            assert ("scan[" in str(jax.make_jaxpr(fn)(*args))) == (loop == "map")
        stepped, sums = jax.jit(step)(state, images, labels, keys)
        outputs[loop] = (stepped, sums, jax.jit(logits)(stepped, images))
    chex.assert_trees_all_close(outputs["vmap"], outputs["map"], rtol=1e-6)
    assert outputs["map"][2].shape == (3, 5, 2) and int(outputs["map"][0].step) == 1


def test_auto_loops_over_replicas_with_map_on_the_cpu_and_vmap_elsewhere():
    assert [replicas.resolve_loop("auto", backend) for backend in ("cpu", "gpu", "tpu")] == [
        "map",
        "vmap",
        "vmap",
    ]
    assert replicas.resolve_loop("vmap", "cpu") == "vmap"
    assert replicas.resolve_loop("map", "gpu") == "map"


@pytest.mark.parametrize("replica_loop", ["vmap", "map"])
def test_replica_data_order_gives_each_replica_its_own_batches(tiny_config, replica_loop):
    tiny_config.replica_data_order, tiny_config.replica_loop = True, replica_loop
    run = build_run(_population_config(tiny_config))
    order = run.order(0)
    assert order.shape == (3, 512)
    assert not np.array_equal(order[0], order[1])
    np.testing.assert_array_equal(np.sort(order, axis=1), np.tile(np.arange(512), (3, 1)))
    indices = batches.batch_indices(order, 64, 2, slice(None))
    np.testing.assert_array_equal(indices, order[:, 128:192].T)  # batch-major: (64, 3)
    state, sums = jax.jit(run.train_step())(
        run.init_state(),
        run.dataset.train_images[indices],
        run.dataset.train_labels[indices],
        run.keys["train"],
    )
    assert sums["count"].tolist() == [64.0] * 3
    alone_init, alone_step = _alone(run)
    for r in range(3):  # replica r trained on its own column of the batch
        _, alone_sums = alone_step(
            alone_init(run.keys["init"][r]),
            run.dataset.train_images[indices[:, r]],
            run.dataset.train_labels[indices[:, r]],
            run.keys["train"][r],
        )
        np.testing.assert_allclose(sums["loss"][r], alone_sums["loss"], rtol=1e-5)


@pytest.fixture(scope="module")
def population_run(tiny_mnist_dir, tmp_path_factory):
    """One epoch: every row a population writes (train and test) and a checkpoint, whose
    three replicas already score apart (the best is a real choice)."""
    from conftest import tiny_config_for

    workdir = tmp_path_factory.mktemp("population")
    config = _population_config(tiny_config_for(tiny_mnist_dir, num_epochs=1))
    return workdir, train_and_evaluate(config, str(workdir))


@pytest.fixture(scope="module")
def population_logits(population_run):
    """The latest checkpoint, restored, and its test logits (N, examples, classes): what
    `inspect` and `evaluate` are checked against, read once (the tests only read them)."""
    snapshot = load_run(str(population_run[0]), "latest")
    logits, labels = predict_split(snapshot)
    return snapshot, logits, labels


def test_rows_report_the_mean_the_spread_and_each_replica(population_run):
    workdir, result = population_run
    rows = read_rows(workdir / "metrics.jsonl")
    assert {row["split"] for row in rows} == {"train", "test"}
    for row in rows:
        per = row["accuracy_per_replica"]
        assert len(per) == 3
        assert row["accuracy"] == pytest.approx(np.mean(per))
        assert row["accuracy_std"] == pytest.approx(np.std(per, ddof=1))
        assert row["loss"] == pytest.approx(np.mean(row["loss_per_replica"]))
    test = [r for r in rows if r["split"] == "test"][-1]
    assert 0 < test["ensemble_accuracy"] <= 1
    assert result.test["accuracy_per_replica"] == test["accuracy_per_replica"]


def test_inspect_looks_at_one_member_the_best_by_default(population_run, population_logits):
    """`lenet_jax.inspect --member`: a population is looked at one model at a time."""
    _, result = population_run
    snapshot, logits, _ = population_logits
    images = snapshot.dataset.test_images[:5]
    for which in range(3):
        one = inside.member(snapshot, str(which))
        assert one.run.num_replicas == 1
        np.testing.assert_allclose(
            inside.look(one, images).logits, logits[which, :5], rtol=1e-5, atol=1e-5
        )
    scores = result.test["accuracy_per_replica"]
    best = int(np.argmax(scores))
    assert scores.count(scores[best]) == 1  # a unique best: "best" names one replica
    np.testing.assert_allclose(
        inside.look(inside.member(snapshot), images).logits, logits[best, :5], rtol=1e-5, atol=1e-5
    )
    with pytest.raises(UserError, match=r"^--member=3: expected best or 0 to 2$"):
        inside.member(snapshot, "3")


def test_evaluate_scores_each_replica_and_the_ensemble(population_run, population_logits):
    workdir, result = population_run
    # Only the report is read here: a population's plots are drawn by test_sweeps.py's
    # evaluate (a sweep is a population), and checked by test_plots.py.
    report = evaluate_workdir(str(workdir), "latest", draw_plots=False)
    np.testing.assert_allclose(
        report["accuracy_per_replica"], result.test["accuracy_per_replica"], atol=1e-6
    )
    assert report["ensemble_accuracy"] == pytest.approx(result.test["ensemble_accuracy"])
    snapshot, logits, labels = population_logits
    assert logits.shape == (3, 256, 10)
    probabilities = _softmax(logits).mean(0)  # the ensemble by hand
    assert report["ensemble_accuracy"] == pytest.approx(
        float((probabilities.argmax(-1) == labels).mean())
    )
    # predict: the ensemble, or one replica, over the whole split (predict_split's program)
    images = snapshot.dataset.test_images
    np.testing.assert_allclose(classify(snapshot, images), probabilities, rtol=1e-5)
    one = _softmax(logits[1])
    np.testing.assert_allclose(classify(snapshot, images, replica=1), one, rtol=1e-5)
    for r in range(3):
        accuracy = float((combined_logits(logits, r).argmax(-1) == labels).mean())
        assert accuracy == pytest.approx(report["accuracy_per_replica"][r])
    assert sum(report["confusion_matrix"][i][i] for i in range(10)) == round(
        report["ensemble_accuracy"] * 256
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    """The class probabilities of `logits` (last axis), by hand on the host, in float64."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
