"""lenet_jax/testing.py, the contract kit: it passes the stock models and names the check a
broken module fails (its passing cases are the fork models in test_model_contract.py)."""

import pytest

from lenet_jax.models.contract import ModelError
from lenet_jax.testing import check_model


def test_a_stock_model_passes_and_reports_what_it_learned():
    # XLA's convolutions: the banded ones `auto` picks on a CPU take longer to compile.
    fields = {"batch_norm": True, "dropout_rate": 0.3, "conv_impl": "xla"}
    report = check_model("lenet_modern", fields=fields)
    assert report.num_params == 61_728 and report.has_batch_stats
    assert report.rng_streams == ("dropout",) and len(report.losses) == 10


@pytest.mark.parametrize(
    "model, error, message",
    [
        ("fork_models.kit_breakers:NoisyEval", AssertionError, "eval mode must ignore the key"),
        ("fork_models.kit_breakers:Frozen", AssertionError, "did not lower the loss"),
        ("fork_models.bare:Broken", ModelError, "failed at its train-mode call"),
        ("fork_models.bare:NoGradient", ModelError, "failed at its gradient of the train-mode"),
    ],
)
def test_a_broken_module_fails_naming_the_check(model, error, message):
    with pytest.raises(error, match=message):
        check_model(model)
