"""The loss seam (`config.loss`): the built-in cross-entropy, a model's auxiliary loss and
its weight, a fork's loss function by `package.module:function`, named terms in every
report, and one-line errors, before anything is written, for a loss that breaks the seam."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from cli_checks import train_checks
from conftest import tiny_train_args

from lenet_jax import prng
from lenet_jax.errors import UserError
from lenet_jax.models import build_model
from lenet_jax.models.contract import Output
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.testing import check_model
from lenet_jax.training import loop as trainer
from lenet_jax.training import losses, metrics
from lenet_jax.training.metrics_log import read_rows
from lenet_jax.training.tensorboard import read_scalars

AUX_MODEL = "fork_models.aux_loss:ActivityPenaltyCNN"


def _output(logits, **extras) -> Output:
    logits = jnp.asarray(logits, jnp.float32)
    return Output(logits, extras, (logits, extras))


def test_the_built_in_loss_is_cross_entropy_with_the_configs_smoothing(tiny_config):
    tiny_config.label_smoothing = 0.3
    loss = losses.resolve(tiny_config)
    logits, labels = jnp.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]]), jnp.array([0, 2])
    value = loss(_output(logits), labels)
    expected = metrics.cross_entropy(logits, labels, 0.3)
    chex.assert_trees_all_close(value.per_example, expected)
    chex.assert_trees_all_close(value.objective, expected.mean())
    assert value.terms == {}
    # The steps' default (no config): plain cross-entropy, no smoothing.
    plain = losses.Loss("cross_entropy", losses.cross_entropy())(_output(logits), labels)
    chex.assert_trees_all_close(plain.per_example, metrics.cross_entropy(logits, labels))


def test_a_scalar_loss_and_a_per_example_loss_agree_and_respect_the_mask():
    logits, labels = jnp.array([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]]), jnp.array([0, 0, 1])
    mask = jnp.array([True, True, False])
    per_example = metrics.cross_entropy(logits, labels)

    def scalar(output, labels, mask):
        return (per_example * mask).sum() / mask.sum()

    by_example = losses.Loss("e", lambda o, y, m: per_example)(_output(logits), labels, mask)
    by_scalar = losses.Loss("s", scalar)(_output(logits), labels, mask)
    hand = (per_example[0] + per_example[1]) / 2  # the padded third example is left out
    chex.assert_trees_all_close(by_example.objective, hand)
    chex.assert_trees_all_close(by_scalar.objective, hand)
    first_only = jnp.array([True, False, False])
    one = losses.Loss("e", lambda o, y, m: per_example)(_output(logits), labels, first_only)
    chex.assert_trees_all_close(one.objective, per_example[0])  # one real example: itself
    # Summed under the mask, as the metrics are, both report the same loss.
    for value in (by_example, by_scalar):
        sums = metrics.batch_sums(logits, labels, value.per_example, mask, value.terms)
        np.testing.assert_allclose(sums["loss"] / sums["count"], hand, rtol=1e-6)


def test_an_auxiliary_loss_is_reported_at_weight_0_and_changes_the_gradients_when_weighted():
    model = build_model(ml_collections.ConfigDict({"name": AUX_MODEL}), num_classes=10)
    images = jax.random.normal(prng.key(0), (4, 28, 28, 1))
    labels = jnp.array([0, 1, 2, 3])
    params, stats = jax.jit(model.init)(prng.key(1), images)  # one program, not op by op

    def grads(loss_fn):
        def objective(params):
            out, _ = model.apply_output(params, stats, images, train=True, rngs={})
            value = losses.Loss("l", loss_fn)(out, labels)
            return value.objective, value

        return jax.grad(objective, has_aux=True)(params)

    plain, plain_value = grads(losses.cross_entropy(aux_loss_weight=0.0))
    weighted, weighted_value = grads(losses.cross_entropy(aux_loss_weight=0.5))
    aux_only, _ = grads(lambda out, y, m: out.extras["aux_loss"])
    # The term is reported, unweighted, whatever the weight.
    assert set(plain_value.terms) == set(weighted_value.terms) == {"aux_loss"}
    chex.assert_trees_all_close(plain_value.terms, weighted_value.terms)
    chex.assert_trees_all_close(
        weighted_value.objective, plain_value.objective + 0.5 * plain_value.terms["aux_loss"][0]
    )
    # Weighted in, it moves exactly the gradients it reaches: the conv's, not the head's.
    expected = jax.tree.map(lambda p, a: p + 0.5 * a, plain, aux_only)
    chex.assert_trees_all_close(weighted, expected, rtol=1e-5, atol=1e-7)
    assert float(jnp.abs(weighted["conv"]["kernel"] - plain["conv"]["kernel"]).max()) > 1e-4
    chex.assert_trees_all_equal(weighted["head"], plain["head"])


def test_a_models_auxiliary_loss_trains_through_the_cli_into_every_report(tiny_mnist_dir, tmp_path):
    """One epoch: a train row and a test row, each with the term."""
    args = tiny_train_args(
        tmp_path,
        tiny_mnist_dir,
        f"--config.model.name={AUX_MODEL}",
        "--config.aux_loss_weight=0.1",
        "--config.num_epochs=1",
        # Whole eval batches: a scalar the model computes over a batch would also average
        # the padding of a last, partial one.
        "--config.eval_batch_size=128",
    )
    code, stderr = train_checks(args, train=True)  # the command's flags, in-process
    assert code == 0, stderr[-3000:]
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [row["split"] for row in rows] == ["train", "test"]
    assert all(row["aux_loss"] > 0 for row in rows)
    # Train rows report what was minimised: cross-entropy plus 0.1 x the term. Test rows'
    # loss stays plain cross-entropy from the logits, whatever the training loss.
    scalars = read_scalars(str(tmp_path / "tensorboard"))
    assert [v for _, v in scalars["train/aux_loss"]] == pytest.approx(
        [r["aux_loss"] for r in rows if r["split"] == "train"]
    )
    report = evaluate_workdir(str(tmp_path), "latest", draw_plots=False)
    last_test = rows[-1]
    assert report["loss"] == pytest.approx(last_test["loss"], rel=1e-6)
    assert report["aux_loss"] == pytest.approx(last_test["aux_loss"], rel=1e-5)


def test_a_fork_loss_function_is_minimised_and_its_terms_reported(tiny_config, tmp_path):
    tiny_config.loss = "fork_models.fork_losses:focal"
    trainer.train_and_evaluate(tiny_config, str(tmp_path))
    rows = read_rows(tmp_path / "metrics.jsonl")
    for row in rows:
        if row["split"] == "train":  # focal loss weighs each example's cross-entropy by < 1
            assert row["loss"] < row["cross_entropy"]
        else:  # the test rows' loss is cross-entropy, as the fork's term is
            assert row["loss"] == pytest.approx(row["cross_entropy"], rel=1e-5)
    assert rows[-1]["accuracy"] > 0.3  # it learns


def test_per_example_terms_in_evaluate_match_the_test_rows_over_padded_batches(
    tiny_config, tmp_path
):
    """The tiny test split (256) in eval batches of 100 ends in a padded batch; the
    scalar loss and the per-example entropy both leave the padding out."""
    tiny_config.loss = "fork_models.fork_losses:masked_mean_with_entropy"
    tiny_config.eval_batch_size, tiny_config.num_epochs = 100, 1
    trainer.train_and_evaluate(tiny_config, str(tmp_path))
    test_row = read_rows(tmp_path / "metrics.jsonl")[-1]
    report = evaluate_workdir(str(tmp_path), "latest", draw_plots=False)
    assert 0 < test_row["entropy"] <= np.log(10)
    assert report["entropy"] == pytest.approx(test_row["entropy"], rel=1e-5)


def test_a_populations_terms_are_per_replica():
    logits = jnp.array([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [3.0, 0.0]]])  # (N=2, 2, 2)
    terms = {"entropy": jnp.array([[1.0, 3.0], [5.0, 7.0]])}
    # Compiled, as the eval step runs it: op by op, each of its ops would compile alone.
    sums = jax.jit(metrics.eval_sums)(logits, jnp.array([0, 1]), terms=terms)
    totals = metrics.Totals().merge([sums])
    scores = totals.compute()
    assert scores["entropy_per_replica"] == [2.0, 6.0] and scores["entropy"] == 4.0
    assert "ensemble_entropy" not in scores


@pytest.mark.parametrize(
    "loss, message",
    [
        ("hinge", "config.loss: unknown loss 'hinge'; known: ['cross_entropy']"),
        ("no_such_pkg.mod:fn", "config.loss='no_such_pkg.mod:fn': cannot import 'no_such_pkg.mod'"),
        ("fork_models.fork_losses:nope", "'fork_models.fork_losses' has no 'nope'"),
        ("fork_models.fork_losses:not_a_function", "has a int as its 'not_a_function'"),
        (
            "fork_models.fork_losses:logits_not_a_loss",
            "its loss has shape (2, 10) for a batch of 2; expected a scalar or one value",
        ),
        ("fork_models.fork_losses:term_named_accuracy", "term name 'accuracy' is not allowed"),
        (
            "fork_models.fork_losses:wants_an_extra",
            "config.loss='fork_models.fork_losses:wants_an_extra' failed on the model's "
            "train-mode output: KeyError: 'aux_loss'",
        ),
    ],
)
def test_a_loss_that_breaks_the_seam_is_one_line_before_anything_is_written(
    loss, message, tiny_config, tmp_path
):
    tiny_config.loss = loss
    workdir = tmp_path / "run"
    with pytest.raises(UserError) as raised:
        trainer.train_and_evaluate(tiny_config, str(workdir))
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert not workdir.exists()


def test_a_negative_aux_loss_weight_is_refused(tiny_config, tmp_path):
    tiny_config.aux_loss_weight = -1.0
    with pytest.raises(
        UserError, match=r"config.aux_loss_weight=-1.0 is not allowed; expected a number >= 0"
    ):
        trainer.train_and_evaluate(tiny_config, str(tmp_path / "run"))


def test_the_contract_kit_trains_with_a_forks_loss_and_refuses_a_broken_one():
    report = check_model(AUX_MODEL, loss="fork_models.fork_losses:focal", aux_loss_weight=0.1)
    assert report.losses[-1] < report.losses[0]
    with pytest.raises(UserError, match="its loss has shape"):
        check_model(AUX_MODEL, loss="fork_models.fork_losses:logits_not_a_loss")


def test_terms_agree_under_pmap_and_on_one_device(tiny_config, tmp_path):
    """Under pmap each device sums its slice's terms and the step adds them over devices."""
    tiny_config.model.name, tiny_config.aux_loss_weight = AUX_MODEL, 0.1
    tiny_config.num_epochs, tiny_config.batch_size = 1, 64  # 8 examples per device
    test = {}
    for mode in ("single", "pmap"):
        tiny_config.parallelism = mode
        test[mode] = trainer.train_and_evaluate(tiny_config, str(tmp_path / mode)).test
    assert test["pmap"]["aux_loss"] == pytest.approx(test["single"]["aux_loss"], rel=1e-5)
    assert test["pmap"]["loss"] == pytest.approx(test["single"]["loss"], rel=1e-5)
