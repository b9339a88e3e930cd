# The README's two commands. Each sets itself up (idempotent, fast when already done).
.PHONY: train test lint

train:
	@scripts/setup.sh
	.venv/bin/python -m lenet_jax.train --config configs/fashion.py --workdir runs/fashion

test:
	@scripts/setup.sh dev
	.venv/bin/python -m pytest -q tests

lint:
	@scripts/setup.sh dev
	.venv/bin/ruff check lenet_jax configs tests scripts
