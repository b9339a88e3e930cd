"""Bad input, generated: every config field given wrong on purpose as a `--config.FIELD=`
override, every config file that cannot load and every path a run reads given wrong,
through `train`'s own flag parsing and checks up to its first compilation, in this process
(one process checks them all); then the commands against workdirs that hold no finished run.

The field cases come from the project's own definitions (`base_config()`, each stock
config's model fields), so a new field is covered the day it is added. Each case must end
in exit 2 and one `error:` line that names the field or file, before any file is written,
and a workdir it touches is left byte-identical; a value that is legitimately accepted is
listed in `ACCEPTED` with the reason.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import ml_collections
import pytest
from cli_checks import error_lines, train_checks
from conftest import REPO, child_env, tiny_config_for

from lenet_jax.config import base_config, load_config_file
from lenet_jax.errors import UserError
from lenet_jax.inspect import inspect_workdir
from lenet_jax.report.evaluation import evaluate_workdir
from lenet_jax.report.inference import load_run
from lenet_jax.training import loop as trainer

CONFIGS = sorted((REPO / "configs").glob("*.py"))

# (field, value) pairs that are valid on purpose, and why.
ACCEPTED = {
    ("seed", "-1"): "any integer seeds jax.random.key",
    ("data_dir", ""): "'' is the dataset's default place",
    ("tfds_data_dir", ""): "'' is TFDS's default place",
    ("init_exclude", ""): "'' excludes nothing",
    ("freeze", ""): "'' freezes nothing",
    ("init_from", ""): "'' is a fresh start",
    ("sweep", ""): "'' is no sweep",
    ("max_train_seconds", "0"): "0 is no budget",
    ("tfds_data_dir", "no_such_value"): "read only for a TFDS dataset (these runs read files)",
    ("tfds_data_dir", "x" * 5000): "read only for a TFDS dataset (these runs read files)",
}


def _leaves(config: ml_collections.ConfigDict, prefix: str = ""):
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def _field_type(config: ml_collections.ConfigDict, path: str):
    *parents, leaf = path.split(".")
    for part in parents:
        config = config[part]
    return config.get_type(leaf)


def _bad_values(kind) -> list[str]:
    """Wrong type, out of range, empty and absurdly large, as a user would type them."""
    if kind is bool:
        return ["maybe", ""]
    if kind is int:
        return ["abc", "-1", "", "1" + "0" * 30]
    if kind is float:
        return ["abc", "-1", "", "1e300", "nan"]
    if kind in (tuple, list):
        return ["abc", "(-1,)"]
    return ["", "no_such_value", "x" * 5000]  # str


def field_cases() -> list:
    """(field, value, model) for every leaf of base_config(), and every stock config's
    model fields with that config's model (another model drops them with a warning)."""
    base = base_config()
    fields = {field: (value, None) for field, value in _leaves(base)}
    for path in CONFIGS:
        model = load_config_file(str(path)).model
        for key, value in _leaves(model):
            fields.setdefault(f"model.{key}", (value, model.name))
    cases = []
    for field, (default, model) in sorted(fields.items()):
        if field in ("model.name", "model_fields_passed"):
            kind = str
        else:
            try:
                kind = _field_type(base, field)
            except (KeyError, AttributeError):
                kind = type(default)
        for value in _bad_values(kind):
            if (field, value) not in ACCEPTED:
                cases.append(pytest.param(field, value, model, id=f"{field}={value[:12]}"))
    return cases


@pytest.fixture(scope="module")
def base_argv(tiny_mnist_dir) -> list[str]:
    return [
        "--config=tests/tiny_config.py:smoke",
        "--workdir=/nonexistent/never_written",
        "--config.dataset=mnist",
        f"--config.data_dir={tiny_mnist_dir}",
        "--config.num_train_examples=0",
        "--config.num_test_examples=0",
    ]


@pytest.mark.parametrize("field, value, model", field_cases())
def test_a_bad_field_is_one_line_naming_it(field, value, model, base_argv, monkeypatch):
    monkeypatch.chdir(REPO)
    own_model = [f"--config.model.name={model}"] if model else []
    code, stderr = train_checks([*base_argv, *own_model, f"--config.{field}={value}"])
    errors = error_lines(stderr)
    assert code == 2 and len(errors) == 1, f"--config.{field}={value[:40]}: exit {code}\n{stderr}"
    assert "Traceback" not in stderr
    leaf = field.split(".")[-1]
    assert leaf in errors[0], errors[0]


BROKEN_CONFIGS = {
    "syntax.py": ("def get_config(:\n", "a Python syntax error at line 1"),
    "raises.py": ("def get_config():\n    raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "import.py": ("import no_such_module\n", "raised ModuleNotFoundError"),
    "none.py": ("X = 1\n", "defines no get_config()"),
    "returns.py": ("def get_config():\n    return {}\n", "returned dict; expected"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_CONFIGS))
def test_a_config_file_that_cannot_load_is_one_line_naming_it(name, tmp_path):
    source, message = BROKEN_CONFIGS[name]
    path = tmp_path / name
    path.write_text(source)
    code, stderr = train_checks([f"--config={path}", f"--workdir={tmp_path / 'run'}"])
    assert code == 2 and stderr.strip().count("\n") == 0, stderr
    assert stderr.startswith(f"error: --config={path}: ") and message in stderr, stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "kind, message",
    [("directory", "is a directory; expected a config file"), ("missing", "no config file at")],
)
def test_a_config_path_that_is_no_file_is_one_line(kind, message, tmp_path):
    path = tmp_path if kind == "directory" else tmp_path / "missing.py"
    code, stderr = train_checks([f"--config={path}", f"--workdir={tmp_path / 'run'}"])
    assert code == 2 and message in stderr and stderr.strip().count("\n") == 0, stderr


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_workdir_that_cannot_be_a_directory_is_one_line_and_the_file_is_kept(
    where, base_argv, tmp_path, monkeypatch
):
    monkeypatch.chdir(REPO)
    existing = tmp_path / "notes.txt"
    existing.write_text("my notes\n")
    workdir = existing if where == "a file" else existing / "run"
    argv = [arg for arg in base_argv if not arg.startswith("--workdir")]
    command = [sys.executable, "-m", "lenet_jax.train", *argv, f"--workdir={workdir}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith(f"error: --workdir={workdir}")
    assert existing.read_text() == "my notes\n"


# Paths a run reads, each missing, a file where a directory is wanted, and empty.
PATH_FIELDS = {
    "data_dir": "no mnist files",
    "init_from": "not a run's workdir",
}


@pytest.mark.parametrize("kind", ["missing", "a file", "empty"])
@pytest.mark.parametrize("field", sorted(PATH_FIELDS))
def test_a_bad_path_is_one_line_naming_it(field, kind, base_argv, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    path = {"missing": tmp_path / "nope", "a file": tmp_path / "f.txt", "empty": tmp_path / "e"}
    path["a file"].write_text("x")
    path["empty"].mkdir()
    code, stderr = train_checks([*base_argv, f"--config.{field}={path[kind]}"])
    errors = error_lines(stderr)
    assert code == 2 and len(errors) == 1 and "Traceback" not in stderr, stderr
    assert f"config.{field}=" in errors[0] and PATH_FIELDS[field] in errors[0], errors[0]


def _digest(workdir) -> dict:
    return {
        str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(workdir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished_run(tiny_mnist_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finished") / "run"
    trainer.train_and_evaluate(tiny_config_for(tiny_mnist_dir, num_epochs=1), str(workdir))
    return workdir


def _state(finished, state: str, tmp_path):
    """A copy of the finished run in `state`."""
    workdir = tmp_path / state.replace(" ", "_")
    if state == "nothing":
        workdir.mkdir()
        return workdir
    shutil.copytree(finished, workdir)
    if state == "no checkpoints":
        shutil.rmtree(workdir / "checkpoints")
    elif state == "a cut config.json":
        text = (workdir / "config.json").read_text()
        (workdir / "config.json").write_text(text[: len(text) // 2])
    return workdir


STATES = {
    "nothing": "holds no run",
    "no checkpoints": "no checkpoints",
    "a cut config.json": "config.json is not valid JSON",
}


@pytest.mark.parametrize("state", sorted(STATES))
@pytest.mark.parametrize("command", ["evaluate", "predict", "inspect"])
def test_reading_a_workdir_that_holds_no_finished_run_is_one_line_and_changes_nothing(
    command, state, finished_run, tmp_path
):
    workdir = _state(finished_run, state, tmp_path)
    before = _digest(workdir)
    with pytest.raises(UserError, match=STATES[state]) as raised:
        if command == "evaluate":
            evaluate_workdir(str(workdir), "latest")
        elif command == "inspect":
            inspect_workdir(str(workdir))
        else:
            load_run(str(workdir), "latest")  # what predict reads before any image
    assert "\n" not in str(raised.value)
    assert _digest(workdir) == before


def test_training_another_config_on_a_finished_run_is_refused_and_changes_nothing(
    finished_run, tiny_mnist_dir, tmp_path
):
    workdir = _state(finished_run, "finished", tmp_path)
    before = _digest(workdir)
    other = tiny_config_for(tiny_mnist_dir, num_epochs=1)
    other.model.features = (4, 8)
    with pytest.raises(UserError, match="model.features") as raised:
        trainer.train_and_evaluate(other, str(workdir))
    assert "\n" not in str(raised.value)
    assert _digest(workdir) == before


# Unreadable and unwritable paths. The cases run in one child process, which (as root) drops
# CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so mode bits bind it as they bind a user.
WITHOUT_DAC = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]


@pytest.mark.requires(
    os.geteuid() != 0 or shutil.which("setpriv") is not None,
    "setpriv (util-linux) is not installed: root would read every unreadable path",
)
def test_an_unreadable_or_unwritable_path_is_one_line_naming_it(
    finished_run, base_argv, tiny_mnist_dir, tmp_path
):
    config = tmp_path / "config.py"
    config.write_text((REPO / "tests" / "tiny_config.py").read_text())
    data = tmp_path / "data"
    shutil.copytree(tiny_mnist_dir, data)
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    image = tmp_path / "digit.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    overrides = [arg for arg in base_argv if not arg.startswith(("--config=", "--workdir"))]

    def train(*extra, workdir=tmp_path / "w", config="tests/tiny_config.py"):
        return [f"--config={config}:smoke", f"--workdir={workdir}", *overrides, *extra]

    denied = "permission denied"
    cases = {  # name: (case, what its one line must name, what it must say)
        "config file": ({"command": "train", "argv": train(config=config)}, [str(config)], denied),
        "data_dir": (
            {"command": "train", "argv": train(f"--config.data_dir={data}")},
            ["config.data_dir", str(data)],
            denied,
        ),
        "init_from": (
            {"command": "train", "argv": train(f"--config.init_from={run}")},
            ["config.init_from", str(run)],
            denied,
        ),
        "workdir": (
            {"command": "train", "train": True, "argv": train(workdir=read_only / "w")},
            ["--workdir", str(read_only / "w")],
            denied,
        ),
        "evaluate": ({"command": "evaluate", "workdir": str(run)}, [str(run)], denied),
        "predict image": (
            {"command": "predict", "workdir": str(finished_run), "images": [str(image)]},
            [str(image)],
            denied,
        ),
    }
    before = _digest(run)
    for path in (config, data, run, image):
        path.chmod(0)
    read_only.chmod(0o555)
    try:
        drop = WITHOUT_DAC if os.geteuid() == 0 else []  # a user is bound already
        cases_file = tmp_path / "cases.json"
        cases_file.write_text(json.dumps([case for case, _, _ in cases.values()]))
        done = subprocess.run(
            [*drop, sys.executable, str(REPO / "tests" / "cli_checks.py"), str(cases_file)],
            cwd=REPO, capture_output=True, text=True, timeout=300,
            env=child_env(1, PYTHONPATH=str(REPO / "tests")),
        )  # fmt: skip
    finally:
        for path in (config, data, run, image, read_only):
            path.chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    results = dict(zip(cases, json.loads(done.stdout.splitlines()[-1]), strict=True))
    wrong = {}
    for name, (_, names, says) in cases.items():
        code, stderr = results[name]
        errors = error_lines(stderr)
        if code == 0 or len(errors) != 1 or "Traceback" in stderr:
            wrong[name] = stderr
        elif not all(n in errors[0] for n in names) or says not in errors[0].lower():
            wrong[name] = errors[0]
    assert not wrong, wrong
    assert _digest(run) == before
    assert os.listdir(read_only) == []


# The other commands' own flags, generated from their definitions: one child per command
# (its flags are absl's global ones) runs every case through the command's main. Values
# that are valid on purpose, and why:
ACCEPTED_FLAGS = {
    ("summary", "--input_shape="): "empty is the dataset's own image shape",
    ("export", "--to=no_such_value"): "a new directory (here in the test's own folder)",
}


@pytest.mark.parametrize("command", ["evaluate", "predict", "summary", "inspect", "export"])
def test_every_flag_of_a_command_given_wrong_is_one_line(command, finished_run, tmp_path):
    from PIL import Image

    workdir = _state(finished_run, "finished", tmp_path)
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 255).save(image)
    base = {
        "evaluate": [f"--workdir={workdir}"],
        "predict": [f"--workdir={workdir}", str(image)],
        "summary": ["--config=configs/fashion_d2l.py"],
        "inspect": [f"--workdir={workdir}"],
        "export": [f"--workdir={workdir}", f"--to={tmp_path / 'exported'}"],
    }[command]
    before = _digest(workdir)
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "cli_checks.py"), "--flags",
         f"lenet_jax.{command}", json.dumps(base)],
        cwd=tmp_path if command == "export" else REPO,  # export makes relative paths
        capture_output=True, text=True, timeout=300, env=child_env(1),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    assert len(results) > 5
    wrong = {}
    for argv, code, stderr in results:
        if argv and (command, argv[-1]) in ACCEPTED_FLAGS:
            continue
        errors = error_lines(stderr)
        if code == 0 or len(errors) != 1 or "Traceback" in stderr or len(stderr.splitlines()) > 1:
            wrong[" ".join(argv)[:200]] = (code, stderr[-500:])
    assert not wrong, wrong
    assert _digest(workdir) == before
