"""The bugs a review once planted by hand that the suite did not catch, planted again.

Each entry breaks one behaviour in a scratch copy (one text replacement in one module) and
runs the tests that name that behaviour: every one must now be killed. With `--tests-from
REF` the same bugs meet an older suite (the review's "before").

    .venv/bin/python scripts/known_mutants.py                    # the current suite
    .venv/bin/python scripts/known_mutants.py --tests-from 1744b1f
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutate", REPO / "scripts" / "mutate.py")
mutate = importlib.util.module_from_spec(_spec)
sys.modules["mutate"] = mutate  # dataclasses look their module up by name
_spec.loader.exec_module(mutate)


@dataclasses.dataclass(frozen=True)
class KnownMutant:
    name: str
    module: str
    old: str
    new: str
    tests: tuple[str, ...]


KNOWN = (
    KnownMutant(
        "restore_or_init ignores the checkpoint and starts from scratch",
        "lenet_jax/training/loop.py",
        "restored = ckpts.restore_latest_good(run.abstract_state())",
        "restored = None",
        (
            "tests/test_checkpointing.py::test_resumed_run_is_bit_identical_to_an_uninterrupted_one",
            "tests/test_cifar_training.py::test_augmented_resume_is_bit_identical",
        ),
    ),
    KnownMutant(
        "cross_entropy ignores label_smoothing",
        "lenet_jax/training/metrics.py",
        "jax.nn.one_hot(labels, num_classes), label_smoothing)",
        "jax.nn.one_hot(labels, num_classes), 0.0)",
        ("tests/test_steps.py::test_label_smoothing_moves_mass_to_other_classes",),
    ),
    KnownMutant(
        "the confusion matrix built transposed",
        "lenet_jax/training/metrics.py",
        "np.add.at(confusion, (labels, predictions), 1)",
        "np.add.at(confusion, (predictions, labels), 1)",
        ("tests/test_checkpointing.py::test_evaluate_reports_per_class_accuracy_and_confusion",),
    ),
    KnownMutant(
        "save() writes zeroed batch statistics",
        "lenet_jax/training/checkpointing.py",
        "state=ocp.args.StandardSave(state)",
        "state=ocp.args.StandardSave(state.replace(batch_stats=jax.tree.map("
        "np.zeros_like, state.batch_stats)))",
        ("tests/test_cifar_training.py::test_round_trip_keeps_batch_statistics_exactly",),
    ),
    KnownMutant(
        "write_run_plots returns {} when there are no rows",
        "lenet_jax/report/plots.py",
        "    images, labels = run.dataset.split(\"test\")\n    predictions = test_predictions",
        "    if not rows:\n        return {}\n    images, labels = run.dataset.split(\"test\")\n"
        "    predictions = test_predictions",
        ("tests/test_plots.py::test_write_run_plots_without_metrics_still_writes_all",),
    ),
    KnownMutant(
        "the gzip reader returns b'' instead of raising",
        "lenet_jax/data/idx.py",
        'raise UserError(f"{path}: not a readable gzip file ({e})") from None',
        'return b""',
        ("tests/test_fuzz_readers.py::test_a_gz_that_is_not_gzip_inside_is_one_user_error",),
    ),
)


@contextlib.contextmanager
def planted(path: Path, mutant: KnownMutant):
    original = path.read_text()
    if original.count(mutant.old) != 1:
        raise SystemExit(f"known_mutants: {mutant.module} no longer holds {mutant.old!r} once")
    path.write_text(original.replace(mutant.old, mutant.new))
    try:
        yield
    finally:
        path.write_text(original)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests-from", metavar="REF", help="score an older suite's tests/")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    scratch = mutate.Scratch.create(REPO, args.tests_from)
    survivors = 0
    try:
        scratch.check_imports_the_copy(sys.executable)
        for mutant in KNOWN:
            target = mutate.Target(mutant.module, mutant.tests)
            with planted(scratch.repo / mutant.module, mutant):
                outcome = mutate.run_pytest(
                    mutate.pytest_command(target, mutant.tests), scratch, args.timeout
                )
            survivors += outcome.status == "survived"
            print(f"{outcome.status:9s} {outcome.seconds:6.1f} s  {mutant.name}", flush=True)
    finally:
        scratch.remove()
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
