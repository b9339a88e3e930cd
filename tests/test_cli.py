"""The command lines: every bad input, a usage mistake included, is one line on stderr and exit
code 2."""

import glob
import subprocess
import sys

import pytest
from cli_checks import error_lines, train_checks
from conftest import REPO, tiny_train_args, tiny_train_command

from lenet_jax import cli, summary
from lenet_jax.config import load_config_file
from lenet_jax.errors import one_line


def run(cmd):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_bad_input_is_one_line_and_exit_2(tiny_mnist_dir, tmp_path):
    """A real process: exit code 2, one line, no traceback (the other bad inputs run through
    the same checks in-process: below, and tests/test_bad_inputs.py)."""
    overrides = ["--config.optimzer.learning_rate=0.1"]
    result = run(tiny_train_command(tmp_path / "w", tiny_mnist_dir, *overrides))
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "unknown config field 'optimzer'" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--config.model.name=vgg"], "unknown model 'vgg'; known: ['airbench', 'cifar_cnn'"),
        (["--config.dataset=imagenet"], "unknown dataset 'imagenet'; known:"),
        (["--config.batch_size=0"], "config.batch_size=0 is not allowed"),
        (["--config.optimizer.name=rmsprop"], "config.optimizer.name='rmsprop' is not allowed"),
        (["--config.batch_size=abc"], "--config.batch_size=abc"),
        (["--config.model.width=32"], "unknown config field 'model.width'"),
    ],
)
def test_bad_input_is_one_line(overrides, message, tiny_mnist_dir, tmp_path):
    argv = tiny_train_args(tmp_path / "w", tiny_mnist_dir, *overrides)
    code, err = train_checks(argv)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and message in lines[0], err


def test_missing_config_file_is_one_line(tmp_path):
    code, err = train_checks(["--config=configs/nope.py", f"--workdir={tmp_path}"])
    (line,) = error_lines(err)
    assert code == 2 and "configs/nope.py" in line, err


def test_successful_run_states_final_accuracy_last_and_draws_the_plots(tiny_mnist_dir, tmp_path):
    result = run(tiny_train_command(tmp_path, tiny_mnist_dir, "--config.parallelism=single"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith("final test accuracy: ")
    drawn = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert drawn == ["confusion.png", "curves.png", "misclassified.png"]
    assert (tmp_path / "report.html").is_file()  # `config.plots=False`: neither (test_parallel)


@pytest.mark.parametrize("path", sorted(glob.glob(str(REPO / "configs" / "*.py"))))
@pytest.mark.parametrize("arg", ["", ":smoke"])
def test_every_config_file_loads_locked(path, arg):
    config = load_config_file(path + arg)
    for field in ("dataset", "data_dir", "batch_size", "num_epochs", "seed"):
        assert field in config
    assert {"name", "dropout_rate"} <= set(config.model)
    assert {"name", "learning_rate"} <= set(config.optimizer)
    with pytest.raises(AttributeError):
        config.optimzer = 1  # locked: typos fail


# What importing a command brings along, in fresh processes: one per command that defines
# --workdir (train, evaluate), each with the commands and scripts imported beside it.
IMPORTS_BESIDE_TRAIN = """
import importlib.util, json, sys
import lenet_jax.train
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"matplotlib", "tensorflow"})
import lenet_jax.summary, lenet_jax.predict
spec = importlib.util.spec_from_file_location("benchmark", "scripts/benchmark.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps(loaded))
"""


@pytest.mark.parametrize(
    "code, printed",
    [
        (IMPORTS_BESIDE_TRAIN, "[]"),
        ("import lenet_jax.evaluate, lenet_jax.summary, lenet_jax.predict, lenet_jax.inspect", ""),
    ],
    ids=["train", "evaluate"],
)
def test_importing_a_command_plots_nothing_and_defines_no_clashing_flags(code, printed):
    """train imports no plotting library and no TensorFlow (the plots are drawn after the
    run); summary, predict and scripts/benchmark.py import beside either command (absl
    refuses a flag defined twice); so does inspect."""
    result = run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr[-1000:]
    assert result.stdout.strip() == printed


def test_a_usage_mistake_is_one_line_with_the_usage(tmp_path, capsys):
    """A missing or unexpected argument: absl alone would print the command's docstring."""
    done = run([sys.executable, "-m", "lenet_jax.predict", f"--workdir={tmp_path}"])  # no image
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: give one or more image files after the flags; usage: python -m "
        "lenet_jax.predict --workdir DIR [--checkpoint best|latest|STEP] [--json] IMAGE..."
    ]
    with pytest.raises(SystemExit) as exited:
        cli.usage_as_one_line(summary.main, ["summary", "extra"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("error: unexpected arguments: ['extra']; usage: ")


def test_one_line_flattens_keeps_an_embedded_tracebacks_last_line_and_cuts_at_the_limit():
    assert one_line("first\n  second\n\n") == "first second"
    wrapped = (
        "save failed: Error in a thread\nTraceback (most recent call last):\n  File x\n"
        "OSError: disk full"
    )
    assert one_line(wrapped) == "save failed: OSError: disk full"
    assert one_line(wrapped, 11) == "save failed"
    assert one_line("x" * 500, 400) == "x" * 400
