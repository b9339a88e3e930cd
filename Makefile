# The README's two commands. Each sets itself up (idempotent, fast when already done).
.PHONY: train test lint test-py311 mutate

train:
	@scripts/setup.sh
	.venv/bin/python -m lenet_jax.train --config configs/fashion.py --workdir runs/fashion

test:
	@scripts/setup.sh dev
	.venv/bin/python -m pytest -q -n auto --dist worksteal tests

lint:
	@scripts/setup.sh dev
	.venv/bin/ruff check lenet_jax configs tests scripts examples

# The Python 3.11 pin set (jax 0.10.2, flax 0.12.8) on a smoke subset, so it keeps working.
PY311_TESTS = tests/test_steps.py tests/test_models.py tests/test_metrics.py \
	tests/test_trainer.py tests/test_model_contract.py tests/test_summary.py tests/test_prng.py
test-py311:
	@PYTHON_VERSION=3.11 VENV=.venv-py311 scripts/setup.sh dev
	.venv-py311/bin/python -m pytest -q -n auto --dist worksteal $(PY311_TESTS)

# Mutation testing (scripts/mutate.py): how many small deliberate bugs the tests catch.
# e.g. make mutate MUTATE_ARGS="--modules metrics --max-per-module 10"
mutate:
	@scripts/setup.sh dev
	.venv/bin/python scripts/mutate.py $(MUTATE_ARGS)
