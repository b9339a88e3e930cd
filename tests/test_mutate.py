"""scripts/mutate.py: the mutants it makes from small sources, what it leaves alone, and
that a mutant applied and restored leaves the file as it was. No JAX, no pytest runs."""

import ast
import importlib.util
import os
import subprocess
import textwrap

import pytest
from conftest import REPO


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "lenet_jax_mutate_script", REPO / "scripts" / "mutate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mutate = _load_script()


def _mutated(source: str, functions=()) -> list[str]:
    """Each mutant's whole mutated source, stripped."""
    source = textwrap.dedent(source)
    return [m.apply(source).strip() for m in mutate.mutants_of(source, "x.py", functions)]


@pytest.mark.parametrize(
    "source, expected",
    [
        ("y = a + b", "y = a - b"),
        ("y = a - b", "y = a + b"),
        ("y = a * b", "y = a / b"),
        ("y = a / b", "y = a * b"),
        ("y = a // b", "y = a / b"),
        ("y = a ** b", "y = a * b"),
        ("y += a", "y -= a"),
        ("y = a < b", "y = a <= b"),
        ("y = a <= b", "y = a < b"),
        ("y = a > b", "y = a >= b"),
        ("y = a >= b", "y = a > b"),
        ("y = a == b", "y = a != b"),
        ("y = a != b", "y = a == b"),
        ("y = a is b", "y = a is not b"),
        ("y = a is not b", "y = a is b"),
        ("y = a in b", "y = a not in b"),
        ("y = a not in b", "y = a in b"),
        ("y = a and b", "y = a or b"),
        ("y = a or b", "y = a and b"),
        ("y = not a", "y = a"),
        ("y = True", "y = False"),
        ("y = False", "y = True"),
        ("y = a[0]", "y = a[1]"),
        ("y = a[1]", "y = a[0]"),
        ("y = a[7]", "y = a[8]"),
        ("y = 0.5", "y = 1.0"),
        ("y = 0.0", "y = 1.0"),
        ("y = -a", "y = a"),
        ("def f():\n    return a", "def f():\n    return None"),
    ],
)
def test_each_operator_kind_gives_its_mutant(source, expected):
    assert expected in _mutated(source)


def test_only_the_mutated_span_changes_formatting_and_comments_stay():
    source = "y = (a  # why a\n     *   b)  # and b\n"
    assert _mutated(source) == ["y = (a  # why a\n     /   b)  # and b"]


def test_a_chained_comparison_gives_one_mutant_per_operator():
    assert _mutated("ok = 0 <= i < n") == [
        "ok = 1 <= i < n",
        "ok = 0 < i < n",
        "ok = 0 <= i <= n",
    ]


def test_precedence_is_kept_with_parentheses_where_needed():
    assert "y = a / (b * 2)" in _mutated("y = a / b ** 2")
    assert "y = x and (a or b)" in _mutated("y = x and not (a or b)")


def test_return_none_and_bare_returns_are_left_alone():
    assert _mutated("def f():\n    return None\n\ndef g():\n    return\n") == []


def test_docstrings_messages_and_annotations_are_not_mutated():
    source = '''
        """Module doc: 1 + 2."""
        import warnings

        def f(a: int = 1) -> list[int]:
            """Doc: a < 2."""
            if a:
                raise ValueError(f"bad {a + 1}", a - 1)
            assert a, f"a is {a * 2}"
            print("sum", a + 1)
            log(f"{a - 1}")
            warnings.warn(str(a + 1))
            logger.info("x %d", a + 1)
            name = "a" + "b"
            n: int = 3
        '''
    assert _mutated(source) == [
        textwrap.dedent(source).replace("a: int = 1", "a: int = 0").strip(),
        textwrap.dedent(source).replace("n: int = 3", "n: int = 4").strip(),
    ]


def test_every_mutant_parses_and_differs_from_the_original():
    source = (REPO / "lenet_jax" / "data" / "idx.py").read_text()
    mutants = mutate.mutants_of(source, "idx.py")
    assert len(mutants) > 30
    original = ast.dump(ast.parse(source))
    for m in mutants:
        assert ast.dump(ast.parse(m.apply(source))) != original, m.description


def test_restricting_to_functions_keeps_only_their_mutants():
    source = """
        def f():
            return 1

        def g():
            return 2

        class C:
            def m(self):
                def inner():
                    return 3
                return inner

            def other(self):
                return 4
        """
    lines = [m.line for m in mutate.mutants_of(textwrap.dedent(source), "x.py", ["f", "C.m"])]
    assert sorted(set(lines)) == [3, 11, 12]
    with pytest.raises(ValueError, match="no function or method named nope"):
        mutate.mutants_of(textwrap.dedent(source), "x.py", ["nope"])


def test_a_mutant_records_where_and_what_it_changes():
    (m,) = [m for m in mutate.mutants_of("x = 1\ny = a + b\n", "x.py") if m.kind == "arithmetic"]
    assert (m.file, m.line, m.col) == ("x.py", 2, 6)
    assert (m.original, m.mutated) == ("y = a + b", "y = a - b")
    assert m.description == "line 2: a + b -> a - b"


def test_applying_then_restoring_leaves_the_file_byte_identical(tmp_path):
    path = tmp_path / "module.py"
    original = '# café\r\ndef f(x):  # déjà vu\r\n    return {"é": x * 2 + 1}\r\n'.encode()
    path.write_bytes(original)
    mutants = mutate.mutants_of(original.decode(), "module.py")
    assert {m.replacement for m in mutants} == {"None", "x * 2 - 1", "x / 2", "3", "0"}
    for m in mutants:
        with mutate.applied(path, m):
            text = path.read_bytes().decode()
            assert text.count("\r\n") == 3 and "déjà vu" in text
            ast.parse(text)
        assert path.read_bytes() == original


def test_the_sample_is_seeded_and_in_source_order():
    source = "\n".join(f"x{i} = {i}" for i in range(2, 40))
    mutants = mutate.mutants_of(source, "x.py")
    first = mutate.sample(mutants, 5, seed=1, module="m")
    assert first == mutate.sample(mutants, 5, seed=1, module="m")
    assert first != mutate.sample(mutants, 5, seed=2, module="m")
    assert [m.line for m in first] == sorted(m.line for m in first)
    assert mutate.sample(mutants, 0, seed=1, module="m") == mutants


def test_every_target_exists_and_its_tests_are_in_the_suite():
    for target in mutate.TARGETS:
        assert (REPO / target.module).is_file(), target.module
        if target.functions:  # they exist (else a ValueError) and hold mutants
            assert mutate.module_mutants(target), target.module
        for test in target.tests:
            assert mutate.is_in_suite(test, REPO), test
    assert [t.module for t in mutate.select_targets(["idx", "lenet_jax.training.steps"])] == [
        "lenet_jax/data/idx.py",
        "lenet_jax/training/steps.py",
    ]


def test_pytest_exit_codes_are_read_as_the_table_counts_them(tmp_path):
    scratch = mutate.Scratch(root=tmp_path, repo=tmp_path, env=dict(os.environ))
    status = {}
    for code in (0, 1, 2, 4, 5):
        status[code] = mutate.run_pytest(["sh", "-c", f"exit {code}"], scratch, 60).status
    assert status == {0: "survived", 1: "killed", 2: "killed", 4: "error", 5: "error"}
    assert mutate.run_pytest(["sleep", "5"], scratch, 0.2).status == "timeout"


def test_tests_from_a_commit_replace_the_working_trees(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "stale.py").write_text("")
    mutate._replace_tests(REPO, tmp_path, "HEAD")
    assert not (tmp_path / "tests" / "stale.py").exists()
    committed = subprocess.run(
        ["git", "show", "HEAD:tests/conftest.py"], cwd=REPO, capture_output=True, check=True
    ).stdout
    assert (tmp_path / "tests" / "conftest.py").read_bytes() == committed
