"""Population-based training (`config.sweep_strategy='pbt'`): the exploit step copies whole
member states and perturbs their values, its rows name every move, and a run stopped by a
real SIGTERM resumes bit-identically, its exploits drawn as the uninterrupted run drew
them."""

import json
import shutil

import chex
import jax
import numpy as np
import optax
import pytest
from conftest import sigterm_as_epoch_starts

from lenet_jax.errors import UserError
from lenet_jax.training import checkpointing, pbt, sweeps
from lenet_jax.training.loop import train_and_evaluate
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.preemption import Preempted
from lenet_jax.training.run import build_run
from lenet_jax.training.state import TrainState
from lenet_jax.training.sweep_optim import SweptState
from lenet_jax.training.tensorboard import read_scalars

RATES = [1e-3, 1e-2]
TIMING = ("examples_per_sec", "epoch_seconds")


def _pbt_config(config, **pbt_fields):
    config.sweep = json.dumps({"optimizer.learning_rate": RATES})
    config.sweep_strategy = "pbt"
    config.pbt.fraction = 0.5
    config.pbt.update(pbt_fields)
    return config


def test_a_stopped_pbt_run_resumes_bit_identically_and_its_rows_name_the_exploits(
    tiny_config, tmp_path, monkeypatch
):
    """Under pmap, whose state spans the devices: three epochs, exploits after the first two.
    The stop comes one step into the second epoch, and its checkpoint is then lost (as if
    the process had been killed before saving it), so the rerun resumes from the first
    epoch's: the exploit must be in that checkpoint, and the second drawn as before. Two
    steps an epoch and one eval batch are enough (each pmap step on 8 CPU devices is slow)."""
    config = _pbt_config(tiny_config)
    config.parallelism, config.num_epochs = "pmap", 3
    config.num_train_examples = 2 * config.batch_size  # the stop then falls mid-epoch
    config.num_test_examples = config.eval_batch_size
    whole = train_and_evaluate(config, str(tmp_path / "whole"))
    with sigterm_as_epoch_starts(monkeypatch, epoch=1), pytest.raises(Preempted):
        train_and_evaluate(config, str(tmp_path / "stopped"))
    checkpoints = tmp_path / "stopped" / "checkpoints"
    epoch_end, stop = checkpointing.committed_steps(str(checkpoints))
    shutil.rmtree(checkpoints / str(stop))
    resumed = train_and_evaluate(config, str(tmp_path / "stopped"))
    assert resumed.resumed_from == epoch_end == whole.step // 3
    chex.assert_trees_all_equal(resumed.state, whole.state)
    untimed = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    rows = read_rows(tmp_path / "whole" / "metrics.jsonl")
    assert untimed(read_rows(tmp_path / "stopped" / "metrics.jsonl")) == untimed(rows)

    exploit_rows = [r for r in rows if r["split"] == pbt.SPLIT]
    assert [r["epoch"] for r in exploit_rows] == [1, 2]  # none after the last epoch
    for row in exploit_rows:
        before = next(r for r in rows if r["split"] == "test" and r["epoch"] == row["epoch"])
        assert row["scores"] == before["accuracy_per_replica"]
        ranked = np.argsort(-np.asarray(row["scores"]), kind="stable")
        assert len(row["exploits"]) == 1
        for exploit in row["exploits"]:
            assert exploit["member"] in ranked[1:] and exploit["copied"] in ranked[:1]
            rate = exploit["values"]["optimizer.learning_rate"]
            donor = before["members"][exploit["copied"]]["optimizer.learning_rate"]
            assert min(abs(rate / donor - f) for f in config.pbt.perturb) < 1e-6
            assert row["members"][exploit["member"]]["optimizer.learning_rate"] == rate
    # The values the members end with are those of the last exploit, in the final rows and
    # in sweep.json; TensorBoard names each member's curves by its index, as they change.
    last_test = [r for r in rows if r["split"] == "test"][-1]
    assert last_test["members"] == exploit_rows[-1]["members"]
    table = json.loads((tmp_path / "whole" / sweeps.TABLE_FILE).read_text())
    assert {row["member"]: row["optimizer.learning_rate"] for row in table} == {
        m: values["optimizer.learning_rate"] for m, values in enumerate(last_test["members"])
    }
    curves = read_scalars(str(tmp_path / "whole" / "tensorboard"))
    assert {f"test/accuracy_per_replica/member {m}" for m in range(2)} <= set(curves)


def test_exploits_come_every_pbt_every_epochs_and_never_in_an_independent_sweep(
    tiny_config, tmp_path
):
    """Every third epoch of four: after the third only (none after the last). The same
    sweep run `independent` trains its members without a single exploit."""
    config = _pbt_config(tiny_config, every_epochs=3)
    config.num_epochs = 4
    config.num_train_examples = config.batch_size
    config.num_test_examples = config.eval_batch_size
    epochs_of = {}
    for strategy in pbt.STRATEGIES:
        config.sweep_strategy = strategy
        train_and_evaluate(config, str(tmp_path / strategy))
        rows = read_rows(tmp_path / strategy / "metrics.jsonl")
        epochs_of[strategy] = [r["epoch"] for r in rows if r["split"] == pbt.SPLIT]
    assert epochs_of == {"independent": [], "pbt": [3]}


def _population(n: int = 4) -> TrainState:
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(n, 3)).astype(np.float32)}
    inner = optax.ScaleByAdamState(
        count=np.arange(n, dtype=np.int32), mu=params, nu={"w": params["w"] ** 2}
    )
    hparams = {"learning_rate": np.asarray([1e-3, 2e-3, 4e-3, 8e-3], np.float32)}
    return TrainState(
        step=np.int32(5),
        params=params,
        opt_state=SweptState(hparams, inner),
        batch_stats={"mean": rng.normal(size=(n, 2)).astype(np.float32)},
        ema_params=None,
    )


def test_an_exploit_copies_the_whole_member_state_and_sets_its_new_values():
    state = _population()
    moved = pbt.apply(
        state, [pbt.Exploit(member=3, copied=1, values={"optimizer.learning_rate": 0.0025})]
    )
    one, three = (
        jax.tree.map(lambda x, m=m: np.asarray(x)[m], moved.replace(step=None)) for m in (1, 3)
    )
    chex.assert_trees_all_equal(one.params, three.params)
    chex.assert_trees_all_equal(one.batch_stats, three.batch_stats)
    chex.assert_trees_all_equal(one.opt_state.inner, three.opt_state.inner)
    np.testing.assert_array_equal(
        moved.opt_state.hparams["learning_rate"], np.float32([1e-3, 2e-3, 4e-3, 0.0025])
    )
    for member in (0, 1, 2):  # the others, and the donor, are untouched
        np.testing.assert_array_equal(moved.params["w"][member], state.params["w"][member])
    assert moved.step == state.step


def test_the_worst_copy_the_best_and_a_nan_score_ranks_last():
    """Over a few intervals every donor of the best fraction and every factor is drawn; the
    factors multiply the donor's values (0.5 and 1.5: dividing would give others)."""
    members = [{"optimizer.learning_rate": v, "seed": 0} for v in (1e-3, 2e-3, 4e-3, 8e-3)]
    config = type("Pbt", (), {"fraction": 0.5, "perturb": (0.5, 1.5)})
    donors, factors = set(), set()
    for epoch in range(6):
        key = jax.random.fold_in(jax.random.key(0), epoch)
        exploits = pbt.choose(key, [0.3, 0.9, 0.5, float("nan")], True, members, config)
        assert sorted(e.member for e in exploits) == [0, 3]
        for e in exploits:
            assert e.copied in (1, 2)
            donors.add(e.copied)
            rate = e.values["optimizer.learning_rate"]
            factors.add(round(rate / members[e.copied]["optimizer.learning_rate"], 9))
    assert donors == {1, 2} and factors == {0.5, 1.5}
    by_loss = pbt.choose(jax.random.key(1), [0.3, 0.9, 0.5, 0.1], False, members, config)
    assert sorted(e.member for e in by_loss) == [1, 2]  # a loss: lower is better
    config.fraction = 0.1  # of 4 members: still the worst one moves
    assert [e.member for e in pbt.choose(key, [0.3, 0.9, 0.5, 0.1], True, members, config)] == [3]
    assert sweeps.typed("optimizer.learning_rate", 0.01 * 1.25) == 0.0125
    assert sweeps.typed("augment.cutout_size", 8 * 1.25) == 10


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"sweep": ""}, "config.sweep_strategy='pbt' needs config.sweep with 2 or more members"),
        (
            {"sweep": '{"optimizer.learning_rate": [1e-3]}'},
            "config.sweep_strategy='pbt' needs config.sweep with 2 or more members",
        ),
        (
            {"pbt.every_epochs": 3, "eval_every_epochs": 2},
            "config.pbt.every_epochs=3 is not a multiple of config.eval_every_epochs=2",
        ),
        (
            {"pbt.fraction": 0.75},
            "config.pbt.fraction=0.75 is not allowed; expected a number in (0, 0.5]",
        ),
        ({"pbt.every_epochs": 0}, "config.pbt.every_epochs=0 is not allowed; expected a positive"),
        ({"pbt.fraction": 0.0}, "config.pbt.fraction=0.0 is not allowed; expected a number in"),
        (
            {"pbt.perturb": (0.8, 0.0)},
            "config.pbt.perturb=(0.8, 0.0) is not allowed; expected positive",
        ),
        (
            {"pbt.perturb": (True, 1.25)},
            "config.pbt.perturb=(True, 1.25) is not allowed; expected positive",
        ),
        (
            {"sweep_strategy": "genetic"},
            "config.sweep_strategy='genetic' is not allowed; expected ['independent', 'pbt']",
        ),
    ],
)
def test_what_pbt_needs_is_one_line_naming_the_field(tiny_config, fields, message):
    config = _pbt_config(tiny_config)
    for path, value in fields.items():
        section, _, name = path.rpartition(".")
        (config[section] if section else config)[name] = value
    with pytest.raises(UserError) as raised:
        build_run(config)
    assert message in str(raised.value) and "\n" not in str(raised.value)
