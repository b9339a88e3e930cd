"""A hyperparameter sweep in one compiled step (`config.sweep`): each member trains as the
recipe alone with its values and its folded keys; the rows, sweep.json and `evaluate` name
every member; `export` makes one an ordinary run; a bad sweep is one line before anything
runs."""

import json

import chex
import jax
import numpy as np
import optax
import pytest
from conftest import compiled_init

from lenet_jax.errors import UserError
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.report.export import export_member
from lenet_jax.report.inference import load_run
from lenet_jax.training import config_checks, optim, replicas, steps, sweep_optim, sweeps
from lenet_jax.training import loop as trainer
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.run import build_run
from lenet_jax.training.tensorboard import read_scalars

SWEEP = {"optimizer.learning_rate": [1e-3, 3e-3], "optimizer.weight_decay": [0, 5e-4]}


def test_each_member_equals_the_recipe_alone_with_its_values_and_key(tiny_config):
    """Under the step loop and the scanned epoch; zipped, so two members cover every
    sweepable field; with a parameter group, whose optimizer reads the members' values too
    (the biases: twice the rate, no decay)."""
    sweep = SWEEP | {"label_smoothing": [0.2, 0], "augment.cutout_size": [6, 0]}
    assert set(sweep) == set(sweeps.SWEEPABLE)
    tiny_config.sweep, tiny_config.sweep_mode = json.dumps(sweep), "zip"
    tiny_config.optimizer.param_groups = ({"params": "bias", "lr_scale": 2, "weight_decay": False},)
    run = build_run(tiny_config)
    assert run.num_replicas == 2 and run.sweep.members() == [
        {
            "optimizer.learning_rate": 1e-3,
            "optimizer.weight_decay": 0,
            "label_smoothing": 0.2,
            "augment.cutout_size": 6,
            "seed": 0,
        },
        {
            "optimizer.learning_rate": 3e-3,
            "optimizer.weight_decay": 5e-4,
            "label_smoothing": 0,
            "augment.cutout_size": 0,  # alone: no cutout stage at all
            "seed": 0,
        },
    ]
    images, labels = run.dataset.train_images, run.dataset.train_labels
    indices = np.arange(2 * 64).reshape(2, 64)  # two steps
    looped = scanned = run.init_state()
    step = jax.jit(run.train_step())
    for batch in indices:
        looped, sums = step(looped, images[batch], labels[batch], run.keys["train"])
    epoch = jax.jit(steps.make_scan_epoch(run.train_step()))
    scanned, stacked = epoch(scanned, images, labels, indices, run.keys["train"])
    # Read on the host: replicas.select slices numpy arrays, no op compiled for each leaf.
    looped, scanned = jax.device_get((looped, scanned))
    for member in range(2):
        alone, alone_sums = _trained_alone(tiny_config, run, member, indices)
        for state, loss in ((looped, sums["loss"]), (scanned, stacked["loss"][-1])):
            chex.assert_trees_all_close(
                replicas.select(state, member).params, alone.params, atol=1e-6
            )
            np.testing.assert_allclose(loss[member], alone_sums["loss"], rtol=1e-5)
    first, second = (jax.tree.leaves(replicas.select(looped, m).params)[0] for m in (0, 1))
    assert not np.allclose(first, second)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
@pytest.mark.parametrize(
    "values",
    [
        {"optimizer.weight_decay": 5e-4},
        {"optimizer.learning_rate": 3e-3, "optimizer.weight_decay": 1e-3},
    ],
)
def test_a_swept_optimizer_updates_as_the_one_built_with_its_values(tiny_config, name, values):
    """The optimizer alone, by the numbers: a sweep without the peak rate builds it from the
    config's schedule, one with it scales the unit schedule; a parameter group (the
    biases: twice the rate, no decay) reads the values too."""
    settings = tiny_config.optimizer
    settings.name, settings.momentum = name, 0.9
    settings.param_groups = ({"params": "bias", "lr_scale": 2, "weight_decay": False},)
    schedule_of = lambda cfg: optim.make_schedule(cfg, total_steps=8, steps_per_epoch=2)  # noqa: E731
    start = {sweep_optim.state_name(field): value for field, value in values.items()}
    swept = sweep_optim.swept_optimizer(settings, start, schedule_of, optim.make_optimizer)
    filled = sweeps.filled(tiny_config, values).optimizer
    alone = optim.make_optimizer(filled, schedule_of(filled))
    rng = np.random.default_rng(0)
    params = {"Dense_0": {"kernel": rng.normal(size=(3, 2)), "bias": rng.normal(size=2)}}
    params = jax.tree.map(lambda x: x.astype(np.float32), params)
    trained = {}
    for label, tx in (("swept", swept), ("alone", alone)):
        current, state = params, tx.init(params)
        for _ in range(3):
            grads = jax.tree.map(lambda p: np.sin(p) + 1.0, current)
            updates, state = tx.update(grads, state, current)
            current = optax.apply_updates(current, updates)
        trained[label] = current
    chex.assert_trees_all_close(trained["swept"], trained["alone"], rtol=1e-6, atol=1e-7)
    assert not np.allclose(trained["swept"]["Dense_0"]["bias"], params["Dense_0"]["bias"])


def _trained_alone(config, run, member: int, indices):
    """(state, the last step's sums) of the recipe alone with `member`'s values, from the
    member's init key, over the batches `indices` with its train key."""
    alone_run = build_run(sweeps.filled(config, run.sweep.values(member)))
    init = compiled_init(alone_run.model, alone_run.tx, run.dataset.image_shape)
    alone, step = init(run.keys["init"][member]), jax.jit(alone_run.train_step())
    images, labels = run.dataset.train_images, run.dataset.train_labels
    for batch in indices:
        alone, sums = step(alone, images[batch], labels[batch], run.keys["train"][member])
    return alone, sums


def test_a_sweep_names_every_member_in_its_rows_sweep_json_and_evaluate(tiny_config, tmp_path):
    """A grid of 2 x 1 values, 2 seeds each: 4 members, one compiled step."""
    sweep = {"optimizer.learning_rate": [1e-3, 3e-3], "optimizer.weight_decay": [5e-4]}
    tiny_config.sweep, tiny_config.num_replicas = json.dumps(sweep), 2
    tiny_config.num_epochs, tiny_config.best_metric = 1, "loss"  # lower is better
    result = trainer.train_and_evaluate(tiny_config, str(tmp_path))
    grid = [
        {"optimizer.learning_rate": lr, "optimizer.weight_decay": 5e-4, "seed": seed}
        for lr in (1e-3, 3e-3)
        for seed in (0, 1)
    ]
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [row["members"] for row in rows] == [grid] * len(rows)
    assert len(rows[-1]["accuracy_per_replica"]) == 4
    curves = read_scalars(str(tmp_path / "tensorboard"))  # one per member, named by its values
    assert curves["test/accuracy_per_replica/learning_rate=0.003 weight_decay=0.0005 seed 1"] == [
        (rows[-1]["step"], pytest.approx(rows[-1]["accuracy_per_replica"][3]))
    ]
    table = json.loads((tmp_path / sweeps.TABLE_FILE).read_text())
    losses = [row["loss"] for row in table]
    assert losses == sorted(losses) and table[0]["member"] != 0
    assert sorted(row["member"] for row in table) == list(range(4))
    for row in table:
        assert {**grid[row["member"]], "accuracy": row["accuracy"]} == {
            k: row[k] for k in (*grid[0], "accuracy")
        }
        assert row["accuracy"] == result.test["accuracy_per_replica"][row["member"]]
    report = evaluate_workdir(str(tmp_path), "latest")
    assert [row["member"] for row in report["members"]] == [row["member"] for row in table]
    assert report["best"]["member"] == table[0]["member"]
    assert report["plots"]["sweep"].endswith("sweep.png")  # drawn with the others
    _check_the_exported_member_is_an_ordinary_run(tmp_path, table, rows, result)


def _check_the_exported_member_is_an_ordinary_run(workdir, table, rows, result):
    """`export --member best`: the best member's config, state and rows, no member axis;
    `evaluate` scores it as the sweep scored that member."""
    best = table[0]
    exported = export_member(str(workdir), "best", str(workdir / "best"))
    assert exported["member"] == best["member"]
    config = json.loads((workdir / "best" / "config.json").read_text())
    assert (config["sweep"], config["num_replicas"]) == ("", 1)
    assert config["optimizer"]["learning_rate"] == best["optimizer.learning_rate"]
    assert config["optimizer"]["weight_decay"] == best["optimizer.weight_decay"]
    member = load_run(str(workdir / "best"), "latest")
    chex.assert_trees_all_equal(
        member.state.params, replicas.select(result.state, best["member"]).params
    )
    own = read_rows(workdir / "best" / "metrics.jsonl")
    assert [r["accuracy"] for r in own] == [r["accuracy_per_replica"][best["member"]] for r in rows]
    assert own[0]["learning_rate"] == rows[0]["learning_rate_per_replica"][best["member"]]
    # An ordinary run's report; its plots are an ordinary run's (test_plots.py draws them).
    report = evaluate_workdir(str(workdir / "best"), "latest", draw_plots=False)
    assert report["accuracy"] == best["accuracy"] and "members" not in report
    with pytest.raises(UserError, match=r"--member='4': expected best or a member from 0 to 3"):
        export_member(str(workdir), "4", str(workdir / "other"))
    with pytest.raises(UserError, match=r"exists and is not empty; expected a new or empty"):
        export_member(str(workdir), "0", str(workdir / "best"))


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
        ('{"augment.cutout_size": [8, 2.5]}', "grid", "has [8, 2.5]; expected whole numbers"),
        (
            '{"label_smoothing": [0.1, 1.5]}',
            "grid",
            "the member with label_smoothing=1.5: config.label_smoothing=1.5 is not allowed",
        ),
    ],
)
def test_a_bad_sweep_is_one_line_naming_it(tiny_config, sweep, mode, message):
    tiny_config.sweep, tiny_config.sweep_mode = sweep, mode
    with pytest.raises(UserError) as error:
        config_checks.validate(tiny_config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_forks_loss_keeps_its_fields_out_of_a_sweep(tiny_config):
    tiny_config.sweep, tiny_config.loss = '{"label_smoothing": [0, 0.1]}', "my_losses:focal"
    with pytest.raises(UserError, match="'label_smoothing' is read by the built-in losses only"):
        config_checks.validate(tiny_config)
