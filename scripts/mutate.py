"""Mutation testing for lenet_jax: how many small, deliberate bugs do the tests catch?

Each mutant changes one thing in one module (an arithmetic or comparison operator, `and`/
`or`, a `not`, a unary minus, `True`/`False`, a number, a returned value) and the module's
mapped tests (`TARGETS`) are run against it: killed when pytest fails, survived when it
passes. A survivor is behaviour that no mapped test pins down.

Why our own tool: mutmut and cosmic-ray fit JAX code badly (they fork after JAX has
started, route calls through trampolines, and are slow here). This one is small: it parses
a module with `ast`, rewrites only the mutated node's span of the source text (the rest
keeps its formatting), checks that the result parses to exactly the intended tree, and runs
plain pytest, one subprocess per mutant, in a scratch copy of the repository that is first
imported instead of the editable install. All those runs share one JAX compilation cache
(tests/conftest.py reuses the directory it is given), and each starts with an unmutated
baseline run, so a failing suite is reported, not scored.

Messages are not behaviour: string constants, f-strings, docstrings, type annotations,
`raise` statements, assert messages and `print`/`log`/`warnings.warn` calls are never
mutated.

    .venv/bin/python scripts/mutate.py --list                      # the mutants, nothing run
    .venv/bin/python scripts/mutate.py --modules lenet_jax/training/metrics.py
    .venv/bin/python scripts/mutate.py --max-per-module 20 --json runs/mutants.json
    .venv/bin/python scripts/mutate.py --max-per-module 20 --tests-from HEAD~5   # "before"
    make mutate MUTATE_ARGS="--modules steps --max-per-module 10"
"""

import argparse
import ast
import contextlib
import copy
import dataclasses
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Target:
    """A module and the tests that should kill its mutants: pytest paths or node ids,
    fastest first (the run stops at the first failure), an optional `-k` expression, and
    optionally the only functions or methods (qualified names) to mutate."""

    module: str
    tests: tuple[str, ...]
    keyword: str = ""
    functions: tuple[str, ...] = ()


def _tests(file: str, *names: str) -> tuple[str, ...]:
    """The node ids of tests `names` in tests/`file`.py."""
    return tuple(f"tests/{file}.py::{name}" for name in names)


TARGETS: tuple[Target, ...] = (
    Target("lenet_jax/training/steps.py", ("tests/test_steps.py",)),
    Target("lenet_jax/training/eval_steps.py", ("tests/test_steps.py",)),
    Target(
        "lenet_jax/training/metrics.py",
        (
            *_tests(
                "test_metrics",
                "test_batch_sums_respect_the_mask_exactly",
                "test_top_k_breaks_ties_towards_lower_classes_as_argmax_does",
                "test_totals_merge_in_order_in_float64_and_compute_averages",
                "test_a_carry_from_before_the_metrics_module_still_resumes",
            ),
            *_tests(
                "test_evaluation", "test_confusion_rows_are_true_classes_and_columns_predictions"
            ),
            *_tests(
                "test_steps",
                "test_cross_entropy_matches_hand_computation",
                "test_label_smoothing_moves_mass_to_other_classes",
                "test_correct_counts_argmax_hits",
                "test_eval_step_sums_are_exact_and_respect_the_mask",
            ),
            # A population's per-replica sums, spread and ensemble.
            *_tests("test_replicas", "test_rows_report_the_mean_the_spread_and_each_replica"),
        ),
    ),
    Target(
        "lenet_jax/training/checkpointing.py",
        (
            *_tests(
                "test_checkpointing",
                "test_round_trip_is_exact",
                "test_keeps_latest_n_and_the_best",
                "test_written_on_8_devices_restores_on_1_and_back",
            ),
            *_tests("test_fuzz_readers", "test_a_damaged_checkpoint_restores_or_is_one_user_error"),
            *_tests(
                "test_checkpointing",
                "test_the_incompatibility_names_the_first_leaf_that_differs",
                "test_corrupt_latest_falls_back_to_the_previous_good_one",
                "test_all_checkpoints_corrupt_is_an_error_not_a_restart",
                "test_incompatible_workdir_names_the_mismatch_and_keeps_everything",
            ),
            # `restore_arrays`: a warm start from another run's checkpoint.
            *_tests("test_warm_start", "test_a_checkpoint_step_directory_is_a_source_too"),
        ),
    ),
    Target(
        "lenet_jax/training/loop.py",
        (
            *_tests(
                "test_loop_controls", "test_eval_every_epochs_evaluates_when_due_and_after_the_last"
            ),
            *_tests(
                "test_checkpointing",
                "test_incompatible_workdir_names_the_mismatch_and_keeps_everything",
                "test_corrupt_latest_falls_back_to_the_previous_good_one",
                "test_rows_after_the_last_checkpoint_are_not_duplicated",
                "test_rerunning_a_finished_run_trains_nothing_and_returns_its_result",
            ),
            *_tests(
                "test_accidents", "test_sigterm_at_an_epochs_last_step_finishes_that_epoch_first"
            ),
            *_tests(
                "test_loop_controls",
                "test_early_stopping_stops_with_a_checkpoint_and_a_rerun_respects_it",
            ),
            *_tests(
                "test_checkpointing", "test_resumed_run_is_bit_identical_to_an_uninterrupted_one"
            ),
        ),
        functions=("Loop.train",),  # the resume path's loop half
    ),
    Target(
        "lenet_jax/training/resume.py",
        (
            *_tests(
                "test_checkpointing",
                "test_incompatible_workdir_names_the_mismatch_and_keeps_everything",
                "test_corrupt_latest_falls_back_to_the_previous_good_one",
                "test_resumed_run_is_bit_identical_to_an_uninterrupted_one",
            ),
            *_tests("test_warm_start", "test_a_checkpoint_step_directory_is_a_source_too"),
        ),
    ),
    Target(
        "lenet_jax/training/augment.py",
        (
            "tests/test_augment.py",
            *_tests(
                "test_steps",
                "test_alternating_flips_mirror_every_batch_of_the_odd_epochs_only",
                "test_test_time_augmentation_averages_the_views_logits",
            ),
        ),
    ),
    Target("lenet_jax/training/optim.py", ("tests/test_optim.py",)),
    Target(
        "lenet_jax/report/evaluation.py",
        (
            "tests/test_evaluation.py",
            *_tests("test_checkpointing", "test_evaluate_reports_per_class_accuracy_and_confusion"),
            *_tests(
                "test_accidents",
                "test_evaluate_states_the_split_size_and_scores_the_runs_subset",
                "test_a_second_run_on_a_busy_workdir_is_refused_and_evaluate_writes_nothing",
            ),
            *_tests("test_replicas", "test_evaluate_scores_each_replica_and_the_ensemble"),
        ),
    ),
    Target(
        "lenet_jax/data/idx.py",
        ("tests/test_data.py", "tests/test_fuzz_readers.py"),
        keyword="test_data or idx or gz or absurd or dimensions",
    ),
    Target(
        "lenet_jax/data/image_folder.py",
        ("tests/test_image_folder.py", "tests/test_fuzz_readers.py"),
        # Not the CIFAR-10 archive's seconds-long test (the small folders cover the code).
        keyword="(test_image_folder and not cifar10_jpeg) or image_decoder",
    ),
    Target(
        "lenet_jax/training/losses.py",
        _tests(
            "test_losses",
            "test_the_built_in_loss_is_cross_entropy_with_the_configs_smoothing",
            "test_a_scalar_loss_and_a_per_example_loss_agree_and_respect_the_mask",
            "test_an_auxiliary_loss_is_reported_at_weight_0_and_changes_the_gradients_when_weighted",
            "test_a_fork_loss_function_is_minimised_and_its_terms_reported",
            "test_a_loss_that_breaks_the_seam_is_one_line_before_anything_is_written",
        ),
    ),
    Target("lenet_jax/files.py", ("tests/test_files.py",)),
    Target("lenet_jax/training/sweeps.py", ("tests/test_sweeps.py",)),
    Target(
        "lenet_jax/training/sweep_optim.py",
        _tests(
            "test_sweeps",
            "test_a_swept_optimizer_updates_as_the_one_built_with_its_values",
            "test_each_member_equals_the_recipe_alone_with_its_values_and_key",
        ),
    ),
    Target(
        "lenet_jax/training/pbt.py",
        _tests(
            "test_pbt",
            "test_the_worst_copy_the_best_and_a_nan_score_ranks_last",
            "test_what_pbt_needs_is_one_line_naming_the_field",
            "test_an_exploit_copies_the_whole_member_state_and_sets_its_new_values",
            "test_exploits_come_every_pbt_every_epochs_and_never_in_an_independent_sweep",
            "test_a_stopped_pbt_run_resumes_bit_identically_and_its_rows_name_the_exploits",
        ),
    ),
    Target("lenet_jax/training/compile_options.py", ("tests/test_compile_options.py",)),
    Target(
        "lenet_jax/training/batches.py",
        (
            "tests/test_batches.py",
            *_tests(
                "test_checkpointing", "test_resumed_run_is_bit_identical_to_an_uninterrupted_one"
            ),
            *_tests(
                "test_losses",
                "test_per_example_terms_in_evaluate_match_the_test_rows_over_padded_batches",
            ),
            *_tests(
                "test_tfds", "test_streamed_training_equals_in_memory_and_resumes_bit_identically"
            ),
        ),
    ),
    Target(
        "lenet_jax/training/cadence.py",
        _tests(
            "test_loop_controls",
            "test_the_first_best_score_follows_the_metrics_direction",
            "test_due_epochs_and_the_patience_counted_from_the_first_best_evaluation",
            "test_eval_every_epochs_evaluates_when_due_and_after_the_last",
            "test_early_stopping_stops_with_a_checkpoint_and_a_rerun_respects_it",
        ),
    ),
    Target(
        "lenet_jax/training/replicas.py",
        (
            "tests/test_replicas.py",
            *_tests(  # one model alone: the population's code with a single replica
                "test_checkpointing",
                "test_resumed_run_is_bit_identical_to_an_uninterrupted_one",
                "test_evaluate_reports_per_class_accuracy_and_confusion",
            ),
        ),
    ),
    Target("lenet_jax/prng.py", ("tests/test_prng.py",)),
    Target("lenet_jax/ops/forward_grad.py", ("tests/test_forward_grad.py",)),
    Target(
        "lenet_jax/ops/band_conv.py",
        ("tests/test_band_conv.py", "tests/test_conv.py"),
        keyword="test_band_conv or band",
    ),
)

# What the scratch copy holds: what the tests import or read (examples/: test_custom_model).
COPIED = ("lenet_jax", "tests", "configs", "scripts", "examples", "pyproject.toml")

# ---------------------------------------------------------------------------------------
# Mutants
# ---------------------------------------------------------------------------------------

BINARY = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
BINARY |= {ast.FloorDiv: ast.Div, ast.Pow: ast.Mult}
COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
COMPARE |= {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
COMPARE |= {ast.In: ast.NotIn, ast.NotIn: ast.In}
BOOLEAN = {ast.And: ast.Or, ast.Or: ast.And}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//"}
SYMBOL |= {ast.Pow: "**", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
SYMBOL |= {ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in"}
SYMBOL |= {ast.NotIn: "not in", ast.And: "and", ast.Or: "or"}

# Calls whose arguments are messages (what is said, not what is done).
MESSAGE_FUNCTIONS = {"print", "log", "warn"}
MESSAGE_OBJECTS = {"warnings", "logging", "logger", "log"}
MESSAGE_METHODS = {"warn", "warning", "info", "debug", "error", "exception", "critical"}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One mutation of one file: replace text[start:end] with `replacement`."""

    file: str
    line: int
    col: int  # of the first changed character, from 0
    kind: str
    start: int
    end: int
    replacement: str
    original: str  # the changed source line(s), whitespace collapsed
    mutated: str  # the same line(s) after the mutation
    description: str  # "line 34: a + b -> a - b"

    def apply(self, text: str) -> str:
        return text[: self.start] + self.replacement + text[self.end :]


@dataclasses.dataclass(frozen=True)
class _Candidate:
    """A proposed mutation before it is checked: `node` becomes `new_node` in the tree and
    `text` in the source (the whole span of `node`)."""

    kind: str
    node: ast.AST
    new_node: ast.AST
    text: str


class _Source:
    """Source text with ast positions (1-based lines, UTF-8 byte columns) as str offsets."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def offset(self, lineno: int, col: int) -> int:
        start = self.starts[lineno - 1]
        end = self.starts[lineno] if lineno < len(self.starts) else len(self.text)
        line = self.text[start:end]
        if line.isascii():
            return start + col
        return start + len(line.encode()[:col].decode("utf-8", errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),
            self.offset(node.end_lineno, node.end_col_offset),
        )

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]


def _is_message_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id in MESSAGE_FUNCTIONS
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return owner in MESSAGE_OBJECTS or func.attr in MESSAGE_METHODS
    return False


def _is_text(node: ast.AST) -> bool:
    """A string or bytes literal: `+` beside one builds a message or a name, not a number."""
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    )


def _number(value: int | float) -> int | float:
    """The mutated numeric constant: 0 <-> 1, other ints n + 1; floats doubled (0.0 -> 1.0)."""
    if isinstance(value, float):
        return 1.0 if value == 0.0 else value * 2
    return {0: 1, 1: 0}.get(value, value + 1)


def _replace_operator(text: str, gap: tuple[int, int], old: str, new: str) -> str | None:
    """`text` with the operator `old` found in text[gap] replaced by `new`; None where it is
    not there. Only parentheses, white space, line continuations and comments can sit
    beside an operator between two operands, and a `#` there always starts a comment."""
    between = text[gap[0] : gap[1]]
    masked = re.sub(r"#[^\n]*", lambda m: " " * len(m.group()), between)
    token = re.search(r"[^\s()\\](?:.*[^\s()\\])?", masked, re.S)
    if token is None or " ".join(token.group().split()) != old:
        return None
    return text[: gap[0] + token.start()] + new + text[gap[0] + token.end() :]


class _Collector(ast.NodeVisitor):
    """Walks a module and proposes every mutation outside messages and annotations, and
    (when `functions` is given) only inside those functions."""

    def __init__(self, source: _Source, functions: Sequence[str] = ()):
        self.source, self.functions = source, tuple(functions)
        self.scope: list[str] = []
        self.seen: set[str] = set()  # the qualified names of every class and function
        self.candidates: list[_Candidate] = []

    def in_scope(self) -> bool:
        if not self.functions:
            return True
        name = ".".join(self.scope)
        return any(name == f or name.startswith(f + ".") for f in self.functions)

    def add(self, kind: str, node: ast.AST, new_node: ast.AST, text: str | None) -> None:
        """Proposes `node` -> `new_node`, written as `text` (None: no way to write it)."""
        if text is not None and self.in_scope():
            self.candidates.append(_Candidate(kind, node, new_node, text))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.seen.add(".".join(self.scope))
        for child in (*node.decorator_list, *node.bases, *node.keywords, *node.body):
            self.visit(child)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)  # decorators and defaults count as the function's
        self.seen.add(".".join(self.scope))
        for child in (*node.decorator_list, node.args, *node.body):  # not `returns`
            self.visit(child)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_arg(self, node: ast.arg) -> None:
        pass  # only its annotation could hold anything

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_Raise(self, node: ast.Raise) -> None:
        pass  # an exception's message

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        pass

    def visit_Assert(self, node: ast.Assert) -> None:
        self.visit(node.test)  # not its message

    def visit_Call(self, node: ast.Call) -> None:
        if not _is_message_call(node):
            self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        new_op = BINARY.get(type(node.op))
        if new_op is not None and not _is_text(node.left) and not _is_text(node.right):
            new = ast.BinOp(left=node.left, op=new_op(), right=node.right)
            text = self.swap(node, [(node.left, node.right)], node.op, new_op)
            self.add("arithmetic", node, new, text)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        new_op = BINARY.get(type(node.op))
        if new_op is not None:
            new = ast.AugAssign(target=node.target, op=new_op(), value=node.value)
            text = self.swap(node, [(node.target, node.value)], node.op, new_op, suffix="=")
            self.add("arithmetic", node, new, text)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            new_op = COMPARE[type(op)]
            ops = [*node.ops[:i], new_op(), *node.ops[i + 1 :]]
            new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
            text = self.swap(node, [(operands[i], operands[i + 1])], op, new_op)
            self.add("comparison", node, new, text)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        new_op = BOOLEAN[type(node.op)]
        new = ast.BoolOp(op=new_op(), values=node.values)
        pairs = list(zip(node.values, node.values[1:]))
        self.add("boolean", node, new, self.swap(node, pairs, node.op, new_op))
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not | ast.USub):
            kind = "not" if isinstance(node.op, ast.Not) else "unary-minus"
            self.add(kind, node, node.operand, self.source.segment(node.operand))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self.add("boolean-constant", node, ast.Constant(not value, kind=None), str(not value))
        elif isinstance(value, int | float):
            new = _number(value)
            self.add("number", node, ast.Constant(new, kind=None), repr(new))

    def visit_Return(self, node: ast.Return) -> None:
        value = node.value
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            self.add("return", value, ast.Constant(value=None, kind=None), "None")
        self.generic_visit(node)

    def swap(self, node: ast.AST, pairs, old_op, new_op, *, suffix: str = "") -> str | None:
        """`node`'s text with the operator `old_op` between each (left, right) operand pair
        replaced by `new_op`'s (+ `suffix`, as in `+=`), the rest of the text as it was."""
        start = self.source.offset(node.lineno, node.col_offset)
        text = self.source.segment(node)
        old, new = SYMBOL[type(old_op)] + suffix, SYMBOL[new_op] + suffix
        for left, right in reversed(pairs):  # from the right: earlier offsets still hold
            gap = (self.source.span(left)[1] - start, self.source.span(right)[0] - start)
            text = _replace_operator(text, gap, old, new)
            if text is None:
                return None
        return text


def _parents(tree: ast.AST) -> dict[int, tuple[ast.AST, str, int | None]]:
    """id(node) -> (parent, field, index in the field's list or None)."""
    parents = {}
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if isinstance(value, ast.AST):
                parents[id(value)] = (parent, field, None)
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        parents[id(item)] = (parent, field, i)
    return parents


@contextlib.contextmanager
def _swapped(where: tuple[ast.AST, str, int | None], new: ast.AST) -> Iterator[None]:
    """The tree with `new` in place of the node at `where`, for the duration of the block."""
    parent, field, index = where
    holder = getattr(parent, field)
    old = holder if index is None else holder[index]
    if index is None:
        setattr(parent, field, new)
    else:
        holder[index] = new
    try:
        yield
    finally:
        if index is None:
            setattr(parent, field, old)
        else:
            holder[index] = old


class _FlattenBoolOps(ast.NodeTransformer):
    """`(a and b) and c` as `a and b and c`: the same code, which the parser writes flat."""

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.BoolOp:
        self.generic_visit(node)
        values = []
        for value in node.values:
            same = isinstance(value, ast.BoolOp) and type(value.op) is type(node.op)
            values.extend(value.values if same else [value])
        node.values = values
        return node


def _checked_text(text: str, start: int, end: int, candidate: _Candidate, tree, where):
    """The replacement for text[start:end] that parses to exactly the intended tree: the
    candidate's text, else the same in parentheses (operator precedence); None if neither.
    A swapped `and`/`or` may merge with a neighbour of the new kind (`a and b and c`, the
    same code as `(a and b) and c`): those compare flattened."""
    flatten = _FlattenBoolOps().visit
    with _swapped(where, candidate.new_node):
        expected = ast.dump(tree)
        flat = ast.dump(flatten(copy.deepcopy(tree))) if candidate.kind == "boolean" else None
    options = [candidate.text]
    if isinstance(candidate.node, ast.expr):
        options.append(f"({candidate.text})")
    for replacement in options:
        try:
            parsed = ast.parse(text[:start] + replacement + text[end:])
        except SyntaxError:
            continue
        if ast.dump(parsed) == expected or (flat and ast.dump(flatten(parsed)) == flat):
            return replacement
    return None


def _changed(text: str, start: int, old: str, new: str) -> tuple[int, int, str, str]:
    """(line, column) of the first changed character, and the whole source lines around
    the change before and after it, white space collapsed."""
    same_start = len(os.path.commonprefix([old, new]))
    same_end = len(os.path.commonprefix([old[same_start:][::-1], new[same_start:][::-1]]))
    first = start + same_start
    line_start = text.rfind("\n", 0, first) + 1
    line_end = text.find("\n", start + len(old) - same_end)
    line_end = len(text) if line_end < 0 else line_end
    original = text[line_start:line_end]
    mutated = text[line_start:first] + new[same_start:] + text[start + len(old) : line_end]
    line = text.count("\n", 0, first) + 1
    return line, first - line_start, " ".join(original.split()), " ".join(mutated.split())


OPERATIONS = (ast.BinOp, ast.UnaryOp, ast.AugAssign, ast.Compare, ast.BoolOp)


def _brief(node: ast.AST, limit: int = 60) -> str:
    """`node` as code, cut to `limit` characters; an operation's longest operands first
    written `...`, so that its operator stays in view."""
    text = ast.unparse(node)
    if len(text) > limit and isinstance(node, OPERATIONS):
        short = copy.copy(node)
        slots = [(field, None) for field in ("left", "right", "operand", "target", "value")]
        for field in ("values", "comparators"):
            if isinstance(getattr(short, field, None), list):
                setattr(short, field, list(getattr(short, field)))  # not the tree's own
                slots += [(field, i) for i in range(len(getattr(short, field)))]
        operands = [(_get(short, slot), slot) for slot in slots]
        operands = [(len(ast.unparse(o)), slot) for o, slot in operands if o is not None]
        for _, slot in sorted(operands, key=lambda o: -o[0]):
            _set(short, slot, ast.Name(id="..."))
            text = ast.unparse(short)
            if len(text) <= limit:
                break
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _get(node: ast.AST, slot: tuple[str, int | None]) -> ast.expr | None:
    field, index = slot
    value = getattr(node, field, None)
    value = value if index is None else value[index]
    return value if isinstance(value, ast.expr) else None


def _set(node: ast.AST, slot: tuple[str, int | None], value: ast.expr) -> None:
    field, index = slot
    if index is None:
        setattr(node, field, value)
    else:
        getattr(node, field)[index] = value


def _mutant(
    file: str, text: str, candidate: _Candidate, span: tuple[int, int], replacement: str
) -> Mutant:
    start, end = span
    line, col, original, mutated = _changed(text, start, text[start:end], replacement)
    before, after = _brief(candidate.node), _brief(candidate.new_node)
    if candidate.kind == "boolean":  # as the parser reads it: `a and b and c`
        after = _brief(_FlattenBoolOps().visit(copy.deepcopy(candidate.new_node)))
    if candidate.kind == "return":
        before, after = f"return {before}", "return None"
    description = f"line {line}: {before} -> {after}"
    return Mutant(
        file, line, col, candidate.kind, start, end, replacement, original, mutated, description
    )


def mutants_of(text: str, file: str, functions: Sequence[str] = ()) -> list[Mutant]:
    """Every mutant of the module source `text`, in source order; with `functions`
    (qualified names: "f", "Class.method"), only those inside them."""
    tree = ast.parse(text)
    source = _Source(text)
    collector = _Collector(source, functions)
    collector.visit(tree)
    missing = sorted(set(functions) - collector.seen)
    if missing:
        raise ValueError(f"{file}: no function or method named {', '.join(missing)}")
    parents = _parents(tree)
    mutants = []
    for candidate in collector.candidates:
        start, end = source.span(candidate.node)
        where = parents[id(candidate.node)]
        replacement = _checked_text(text, start, end, candidate, tree, where)
        if replacement is not None:
            mutants.append(_mutant(file, text, candidate, (start, end), replacement))
    return sorted(mutants, key=lambda m: (m.line, m.col))


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------


def is_in_suite(test: str, root: Path) -> bool:
    """Whether a mapped test (a path, or a node id "path::name" / "path::Class::name") is in
    the suite under `root`, read from the text alone (an older suite may lack it)."""
    path, *names = test.split("::")
    if not (root / path).is_file():
        return False
    text = (root / path).read_text()
    return all(
        re.search(rf"^\s*(?:def|class) {re.escape(n.split('[')[0])}\b", text, re.M) for n in names
    )


@dataclasses.dataclass
class Scratch:
    """A copy of the repository to mutate, with one JAX compilation cache for every pytest
    session run in it (tests/conftest.py reuses a directory given it)."""

    root: Path  # holds repo/ (the copy), shared -> ../shared, jax_cache/, pytest.log
    repo: Path
    env: dict[str, str]

    @classmethod
    def create(cls, source: Path, tests_from: str | None) -> "Scratch":
        root = Path(tempfile.mkdtemp(prefix="lenet_jax_mutate_"))
        repo = root / "repo"
        ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache")
        for name in COPIED:
            if (source / name).is_dir():
                shutil.copytree(source / name, repo / name, ignore=ignore)
            elif (source / name).is_file():
                shutil.copy2(source / name, repo / name)
        if (source.parent / "shared").is_dir():  # tests read ../shared where it is
            (root / "shared").symlink_to(source.parent / "shared")
        if tests_from:
            _replace_tests(source, repo, tests_from)
        (root / "jax_cache").mkdir()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
        # Mutants of equal size written within one second would share a stale .pyc.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["LENET_JAX_TEST_SESSION_CACHE"] = str(root / "jax_cache")
        return cls(root, repo, env)

    def check_imports_the_copy(self, python: str) -> None:
        """Fails unless `python` with this environment imports the copy's lenet_jax, not
        the editable install's (run from outside the copy: PYTHONPATH alone decides)."""
        code = "import lenet_jax; print(lenet_jax.__file__)"
        done = subprocess.run(
            [python, "-c", code], cwd=self.root, env=self.env, capture_output=True, text=True
        )
        found = Path(done.stdout.strip() or "?").resolve()
        if done.returncode or not found.is_relative_to(self.repo.resolve()):
            raise SystemExit(
                f"mutate: lenet_jax imports from {found}, not the scratch copy "
                f"{self.repo}: {done.stderr.strip()[-500:]}"
            )
        _say(f"mutating a copy: lenet_jax imports from {found}")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _replace_tests(source: Path, repo: Path, gitref: str) -> None:
    """tests/ as of commit `gitref`, in place of the working tree's."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", gitref, "tests"], cwd=source, capture_output=True
    )
    if archive.returncode:
        raise SystemExit(f"mutate: git archive {gitref} tests: {archive.stderr.decode()}")
    shutil.rmtree(repo / "tests")
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive.stdout, check=True)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one pytest run said of a mutant (or of the unmutated baseline)."""

    status: str  # killed | survived | timeout | error
    seconds: float
    returncode: int | None
    detail: str  # the first failing test, or the end of the output for an error


def pytest_command(target: Target, tests: Sequence[str]) -> list[str]:
    """pytest in this interpreter, stopping at the first failure, with no cache written."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    if importlib.util.find_spec("hypothesis") is not None:
        command.append("--hypothesis-seed=0")  # the same examples for every mutant
    return command + (["-k", target.keyword] if target.keyword else [])


def run_pytest(command: list[str], scratch: Scratch, timeout: float) -> Outcome:
    """Runs `command` in the copy. Exit 0: survived; 5 (no tests collected) or 4 (usage):
    error; any other: killed; past `timeout`: timeout (its whole process group killed)."""
    log = scratch.root / "pytest.log"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command,
            cwd=scratch.repo,
            env=scratch.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError):  # and anything the tests left running
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    seconds = time.monotonic() - started
    output = log.read_text(errors="replace")
    if code is None:
        return Outcome("timeout", seconds, None, "")
    if code == 0:
        return Outcome("survived", seconds, code, "")
    if code in (4, 5):
        return Outcome("error", seconds, code, output[-2000:])
    failed = re.search(r"^(FAILED|ERROR) .*$", output, re.M)
    return Outcome("killed", seconds, code, failed.group() if failed else output[-300:])


@contextlib.contextmanager
def applied(path: Path, mutant: Mutant) -> Iterator[None]:
    """`path` holds the mutant for the duration of the block, then its original bytes."""
    original = path.read_bytes()
    path.write_bytes(mutant.apply(original.decode("utf-8")).encode("utf-8"))
    try:
        yield
    finally:
        path.write_bytes(original)


def module_mutants(target: Target, root: Path = REPO) -> list[Mutant]:
    text = (root / target.module).read_bytes().decode("utf-8")  # newlines as they are
    return mutants_of(text, target.module, target.functions)


def sample(mutants: list[Mutant], n: int, seed: int, module: str) -> list[Mutant]:
    """`n` of `mutants` (all when n is 0 or covers them), the same ones for the same seed
    whichever other modules are chosen, in source order."""
    if not n or len(mutants) <= n:
        return mutants
    picked = random.Random(f"{seed}:{module}").sample(range(len(mutants)), n)
    return [mutants[i] for i in sorted(picked)]


def select_targets(names: Sequence[str]) -> list[Target]:
    """The targets named by path ("lenet_jax/data/idx.py"), dotted module name, or a
    unique file stem ("idx"); all of them when `names` is empty."""
    if not names:
        return list(TARGETS)
    chosen = []
    for name in names:
        found = [t for t in TARGETS if name in _names(t.module)]
        if len(found) != 1:
            known = ", ".join(t.module for t in TARGETS)
            raise SystemExit(f"mutate: --modules {name}: expected one of {known}")
        chosen += [t for t in found if t not in chosen]
    return chosen


def _names(module: str) -> tuple[str, str, str]:
    return module, module.removesuffix(".py").replace("/", "."), Path(module).stem


def run_module(
    scratch: Scratch, target: Target, mutants: list[Mutant], timeout: float
) -> tuple[Outcome, list[Outcome]]:
    """The unmutated baseline, then each mutant in turn (none if the baseline fails: its
    mutants would all count as killed, for nothing)."""
    tests = [t for t in target.tests if is_in_suite(t, scratch.repo)]
    for missing in sorted(set(target.tests) - set(tests)):
        _say(f"{target.module}: {missing} is not in this test suite; left out")
    if not tests:
        baseline = Outcome("error", 0.0, None, "none of its tests are in this suite")
    else:
        baseline = run_pytest(pytest_command(target, tests), scratch, timeout)
        named = {"survived": "passed", "killed": "failed"}  # said of the unmutated module
        baseline = dataclasses.replace(baseline, status=named.get(baseline.status, baseline.status))
    _say(
        f"{target.module}: baseline {baseline.status} {baseline.seconds:.1f} s "
        f"({len(mutants)} mutants)"
    )
    if baseline.status != "passed":
        _say(baseline.detail)
        skipped = Outcome("error", 0.0, None, "the unmutated module fails its tests")
        return baseline, [skipped for _ in mutants]
    outcomes = []
    for i, mutant in enumerate(mutants, 1):
        with applied(scratch.repo / target.module, mutant):
            outcome = run_pytest(pytest_command(target, tests), scratch, timeout)
        outcomes.append(outcome)
        _say(
            f"[{i}/{len(mutants)}] {target.module}:{mutant.line}  {mutant.description}  "
            f"{outcome.status}  {outcome.seconds:.1f} s"
        )
    return baseline, outcomes


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Reporting and the command line
# ---------------------------------------------------------------------------------------


def summary(results: list[tuple[Target, list[Mutant], list[Outcome]]]) -> str:
    """The markdown table per module, then each survivor as `module:line  before -> after`.
    A timeout counts as killed (the mutant changed behaviour) and has its own column too."""
    lines = [
        "| module | mutants | killed | survived | timeouts | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    survivors = []
    for target, mutants, outcomes in results:
        counts = {s: 0 for s in ("killed", "survived", "timeout", "error")}
        for mutant, outcome in zip(mutants, outcomes):
            counts[outcome.status] += 1
            if outcome.status == "survived":
                survivors.append(
                    f"{target.module}:{mutant.line}  {mutant.original} -> {mutant.mutated}"
                )
        lines.append(
            f"| {target.module} | {len(mutants)} | {counts['killed'] + counts['timeout']} | "
            f"{counts['survived']} | {counts['timeout']} | {counts['error']} |"
        )
    lines += ["", "(killed includes timeouts)", "", f"Survivors ({len(survivors)}):"]
    lines += [f"- {s}" for s in survivors]
    return "\n".join(lines)


def write_json(path: str, args: argparse.Namespace, results, baselines) -> None:
    records = [
        {**dataclasses.asdict(m), **dataclasses.asdict(o)}
        for _, mutants, outcomes in results
        for m, o in zip(mutants, outcomes)
    ]
    modules = [
        {**dataclasses.asdict(target), "baseline": dataclasses.asdict(baseline)}
        for (target, _, _), baseline in zip(results, baselines)
    ]
    run = {"seed": args.seed, "max_per_module": args.max_per_module, "tests_from": args.tests_from}
    with open(path, "w") as f:
        json.dump({"run": run, "modules": modules, "mutants": records}, f, indent=1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--modules",
        nargs="+",
        default=[],
        metavar="NAME",
        help="targets by path, dotted name or file stem (default: all)",
    )
    parser.add_argument(
        "--max-per-module",
        type=int,
        default=0,
        metavar="N",
        help="a seeded sample of N mutants per module (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed")
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds per pytest run; past it a mutant counts as a timeout",
    )
    parser.add_argument(
        "--tests-from",
        metavar="GITREF",
        help="score against tests/ as of this commit (a 'before' figure)",
    )
    parser.add_argument("--json", metavar="OUT", help="write every mutant and its outcome")
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    targets = select_targets(args.modules)
    if args.list:
        for target in targets:
            mutants = sample(module_mutants(target), args.max_per_module, args.seed, target.module)
            print(f"{target.module}: {len(mutants)} mutants")
            for m in mutants:
                print(f"  {m.line}:{m.col}  {m.kind:<16} {m.description}")
        return 0
    scratch = Scratch.create(REPO, args.tests_from)
    results, baselines = [], []
    try:
        scratch.check_imports_the_copy(sys.executable)
        for target in targets:
            # From the copy: the working tree may change while this runs.
            mutants = module_mutants(target, scratch.repo)
            mutants = sample(mutants, args.max_per_module, args.seed, target.module)
            baseline, outcomes = run_module(scratch, target, mutants, args.timeout)
            results.append((target, mutants, outcomes))
            baselines.append(baseline)
    finally:
        scratch.remove()
    print(summary(results))
    if args.json:
        write_json(args.json, args, results, baselines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
