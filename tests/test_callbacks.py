"""`config.callbacks`: a fork's hooks run at the loop's moments under the step loop and the
scanned epoch; a broken one is one line, before anything is written, or with everything
saved before it kept."""

import pytest
from cli_checks import error_lines, in_process
from fork_models import callbacks as fork_callbacks

from lenet_jax.errors import UserError
from lenet_jax.training import checkpointing
from lenet_jax.training import loop as trainer
from lenet_jax.training.callbacks import CallbackError, build
from lenet_jax.training.metrics_log import read_rows

LOGGER = "fork_models.callbacks:ParamNormLogger"


@pytest.mark.parametrize(
    ("epoch_loop", "logged_steps"), [("python", [4, 8, 12, 16]), ("scan", [8, 16])]
)
def test_a_forks_callback_sees_every_moment_under_either_epoch_loop(
    epoch_loop, logged_steps, tiny_config, tmp_path
):
    """8 steps per epoch, 2 epochs; the logger reads the state every 4th step it is given:
    each step under the step loop, each epoch's last under the scanned epoch."""
    fork_callbacks.CALLS.clear()
    tiny_config.callbacks = (LOGGER,)
    tiny_config.epoch_loop = epoch_loop
    result = trainer.train_and_evaluate(tiny_config, str(tmp_path))
    calls = fork_callbacks.CALLS
    tests = [row for row in read_rows(tmp_path / "metrics.jsonl") if row["split"] == "test"]
    assert calls[0] == ("on_start", 0, 8)
    steps = [call for call in calls if call[0] == "on_step"]
    assert [(step, state_step) for _, step, state_step, _ in steps] == [
        (step, step) for step in logged_steps
    ]  # the state handed over is the one after that step
    assert all(norm > 0 for *_, norm in steps)
    assert [call for call in calls if call[0] == "on_epoch_end"] == [
        ("on_epoch_end", 1, 8, tests[0]["accuracy"]),
        ("on_epoch_end", 2, 16, tests[1]["accuracy"]),
    ]
    assert calls[-1] == ("on_end", 16, result.test["accuracy"])


def test_a_callback_that_raises_is_one_line_and_what_was_saved_stays(tiny_config, tmp_path, capsys):
    tiny_config.num_epochs = 3
    tiny_config.callbacks = ("fork_models.callbacks:FailsAtEpochTwo",)
    code, stderr = in_process(lambda: trainer.train_and_evaluate(tiny_config, str(tmp_path)))
    assert code == 2 and error_lines(stderr) == [
        "error: callback 'fork_models.callbacks:FailsAtEpochTwo' failed in on_epoch_end: "
        "RuntimeError: the notification service is down"
    ], stderr
    # The hook runs once its epoch is whole: epoch 2's rows and checkpoint are kept.
    rows = read_rows(tmp_path / "metrics.jsonl")
    assert [(row["epoch"], row["split"]) for row in rows] == [
        (epoch, split) for epoch in (1, 2) for split in ("train", "test")
    ]
    with checkpointing.Checkpoints(str(tmp_path / "checkpoints"), keep=3, read_only=True) as c:
        assert c.steps() == [8, 16]
    tiny_config.callbacks = ()
    capsys.readouterr()
    assert trainer.train_and_evaluate(tiny_config, str(tmp_path)).step == 24
    assert f"resuming {tmp_path} from step 16" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fork_models.nowhere:Logger", "cannot import 'fork_models.nowhere'"),
        ("fork_models.callbacks:Nothing", "'fork_models.callbacks' has no 'Nothing'"),
        (
            "fork_models.callbacks:MisspeltHook",
            "defines on_epoch_ends, which is not a hook; the hooks are on_start, on_step, "
            "on_epoch_end, on_end",
        ),
        ("fork_models.callbacks:NeedsAnArgument", "built with no arguments: TypeError"),
        ("fork_models.callbacks:Silent", "defines none of the hooks on_start, on_step"),
        ("fork_models.callbacks:CALLS", "is a list; expected a class with hooks on_start"),
    ],
)
def test_a_callback_that_cannot_be_built_is_one_line_naming_it(name, message):
    with pytest.raises(CallbackError, match=r"config\.callbacks") as raised:
        build([name])
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_bad_callback_stops_the_run_before_any_file(tiny_config, tmp_path):
    tiny_config.callbacks = (LOGGER, "fork_models.callbacks:MisspeltHook")
    with pytest.raises(CallbackError, match="MisspeltHook"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    tiny_config.callbacks = ("not a name",)
    with pytest.raises(UserError, match=r"config.callbacks=\('not a name',\) is not allowed"):
        trainer.train_and_evaluate(tiny_config, str(tmp_path / "run"))
