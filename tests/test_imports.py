"""The package's import contract (docs/architecture.md): no module imports one from a higher
layer, and no import circles. Read from the source, so a lazy import inside a function
counts; an import only for type annotations (`if TYPE_CHECKING:`) does not."""

import ast
import pathlib

from conftest import REPO

PACKAGE = REPO / "lenet_jax"
# Bottom to top; a module belongs to the layer of its longest matching prefix.
LAYERS = [
    ("utilities and config", ["errors", "files", "imports", "config", "prng"]),
    (
        "pure JAX: no I/O, no config",
        ["ops", "models.calls", "models.contract", "models.linen_model", "models.nnx_model",
         "models.probe", "training.state", "training.steps", "training.eval_steps",
         "training.keys", "training.losses", "training.metrics", "training.optim",
         "training.augment", "training.param_groups", "training.replicas",
         "training.sweep_optim", "training.compile_options"],
    ),  # fmt: skip
    (
        "data, models and devices",
        ["data", "models", "training.parallel", "training.distributed", "training.batches",
         "training.compilation_cache"],
    ),  # fmt: skip
    (
        "the run builder and its epoch runners",
        ["training.run", "training.builders", "training.run_data", "training.results",
         "training.cadence", "training.config_checks", "training.epochs", "training.callbacks",
         "training.profiling", "training.progress", "training.warm_start", "training.resume",
         "training.workdir", "training.checkpointing", "training.metrics_log",
         "training.sweeps", "training.pbt"],
    ),  # fmt: skip
    ("the loop", ["training"]),
    ("reports", ["report", "bench"]),
    ("the command lines", [""]),
]


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(module: str, path: pathlib.Path, modules: dict) -> set[str]:
    """The package's modules that `module` imports, outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for node in ast.walk(block)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            names += [f"{base}.{alias.name}" for alias in node.names]
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    relative = module.removeprefix("lenet_jax").lstrip(".")
    matches = [
        (len(prefix), index)
        for index, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if prefix == "" or relative == prefix or relative.startswith(prefix + ".")
    ]
    return max(matches)[1]


def test_no_module_imports_one_from_a_higher_layer():
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_there_are_no_import_circles():
    graph, state, circles = _graph(), {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(circles)


def test_config_imports_only_the_bottom_layer():
    """Every layer reads the config; it reads none of them (its checks live in
    training/config_checks.py, beside the builder)."""
    assert {_layer(target) for target in _graph()["lenet_jax.config"]} <= {0}


def test_every_function_fits_on_a_screen():
    """At most 50 lines per function, so each can be read whole; a config's declaration of
    its fields (`base_config`) is a table, not logic, and is excepted."""
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > 50
        and node.name != "base_config"
    ]
    assert not long, "\n".join(long)


def test_every_module_reads_in_one_sitting():
    """At most 250 lines per module: past that, a module is doing two jobs."""
    long = [
        f"{path.relative_to(REPO)}: {len(path.read_text().splitlines())} lines"
        for path in sorted(PACKAGE.rglob("*.py"))
        if len(path.read_text().splitlines()) > 250
    ]
    assert not long, "\n".join(long)
