"""A hyperparameter sweep in one compiled step (`config.sweep`): each member trains as the
recipe alone with its values and its folded keys; the rows, sweep.json and `evaluate` name
every member; a bad sweep is one line before anything runs."""

import json

import chex
import jax
import numpy as np
import pytest

from lenet_jax.errors import UserError
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.training import config_checks, replicas, steps, sweeps
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.run import build_run
from lenet_jax.training.state import create_train_state

SWEEP = {"optimizer.learning_rate": [1e-3, 3e-3], "optimizer.weight_decay": [0, 5e-4]}


@pytest.mark.parametrize("epoch_loop", ["python", "scan"])
def test_each_member_equals_the_recipe_alone_with_its_values_and_key(tiny_config, epoch_loop):
    """Zipped, so two members cover both fields; each also differs from the other."""
    tiny_config.sweep, tiny_config.sweep_mode = json.dumps(SWEEP), "zip"
    run = build_run(tiny_config)
    assert run.num_replicas == 2 and run.sweep.members() == [
        {"optimizer.learning_rate": 1e-3, "optimizer.weight_decay": 0, "seed": 0},
        {"optimizer.learning_rate": 3e-3, "optimizer.weight_decay": 5e-4, "seed": 0},
    ]
    images, labels = run.dataset.train_images, run.dataset.train_labels
    indices = np.arange(3 * 64).reshape(3, 64)  # three steps
    state = run.init_state()
    if epoch_loop == "python":
        step = jax.jit(run.train_step())
        for batch in indices:
            state, sums = step(state, images[batch], labels[batch], run.keys["train"])
        losses = sums["loss"]
    else:
        epoch = jax.jit(steps.make_scan_epoch(run.train_step()))
        state, stacked = epoch(state, images, labels, indices, run.keys["train"])
        losses = stacked["loss"][-1]
    for member in range(2):
        alone_run = build_run(sweeps.filled(tiny_config, run.sweep.values(member)))
        alone = create_train_state(
            alone_run.model, alone_run.tx, run.keys["init"][member], run.dataset.image_shape
        )
        alone_step = jax.jit(
            steps.make_train_step(
                alone_run.model, alone_run.tx, mean=run.dataset.mean, std=run.dataset.std
            )
        )
        for batch in indices:
            alone, alone_sums = alone_step(
                alone, images[batch], labels[batch], run.keys["train"][member]
            )
        chex.assert_trees_all_close(replicas.select(state, member).params, alone.params, atol=1e-6)
        np.testing.assert_allclose(losses[member], alone_sums["loss"], rtol=1e-5)
    first, second = (jax.tree.leaves(replicas.select(state, m).params)[0] for m in (0, 1))
    assert not np.allclose(first, second)


def test_a_sweep_names_every_member_in_its_rows_sweep_json_and_evaluate(tiny_config, tmp_path):
    """A grid of 2 x 2 values, 2 seeds each: 8 members, one compiled step."""
    tiny_config.sweep, tiny_config.num_replicas = json.dumps(SWEEP), 2
    result = trainer.train_and_evaluate(tiny_config, str(tmp_path))
    grid = [
        {"optimizer.learning_rate": lr, "optimizer.weight_decay": wd, "seed": seed}
        for lr in (1e-3, 3e-3)
        for wd in (0, 5e-4)
        for seed in (0, 1)
    ]
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [row["members"] for row in rows] == [grid] * len(rows)
    assert len(rows[-1]["accuracy_per_replica"]) == 8
    table = json.loads((tmp_path / sweeps.TABLE_FILE).read_text())
    accuracies = [row["accuracy"] for row in table]
    assert accuracies == sorted(accuracies, reverse=True)
    assert sorted(row["member"] for row in table) == list(range(8))
    for row in table:
        assert {**grid[row["member"]], "accuracy": row["accuracy"]} == {
            k: row[k] for k in (*grid[0], "accuracy")
        }
        assert row["accuracy"] == result.test["accuracy_per_replica"][row["member"]]
    report = evaluate_workdir(str(tmp_path), "latest")
    assert [row["member"] for row in report["members"]] == [row["member"] for row in table]
    assert report["best"]["accuracy"] == table[0]["accuracy"]


@pytest.mark.parametrize(
    "sweep, mode, message",
    [
        ("{lr: 1}", "grid", "config.sweep='{lr: 1}' is not JSON"),
        ("[1, 2]", "grid", "config.sweep='[1, 2]'; expected a JSON object of field"),
        (
            '{"batch_size": [64, 128]}',
            "grid",
            "config.sweep: 'batch_size' cannot vary inside one compiled step",
        ),
        ('{"optimizer.learning_rate": []}', "grid", "'optimizer.learning_rate' has []"),
        ('{"optimizer.learning_rate": ["fast"]}', "grid", "has ['fast']; expected"),
        (
            '{"optimizer.learning_rate": [0.1, 0.2], "optimizer.weight_decay": [0]}',
            "zip",
            "config.sweep's fields have different numbers of values",
        ),
        (
            '{"optimizer.learning_rate": [0.1, -1]}',
            "grid",
            "config.sweep: the member with optimizer.learning_rate=-1: "
            "config.optimizer.learning_rate=-1.0 is not allowed; expected a positive number",
        ),
        ('{"optimizer.learning_rate": [0.1]}', "best", "config.sweep_mode='best'"),
    ],
)
def test_a_bad_sweep_is_one_line_naming_it(tiny_config, sweep, mode, message):
    tiny_config.sweep, tiny_config.sweep_mode = sweep, mode
    with pytest.raises(UserError) as error:
        config_checks.validate(tiny_config)
    assert message in str(error.value) and "\n" not in str(error.value)
