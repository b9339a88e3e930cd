"""Modern LeNet-5 (ReLU, max-pool) on Fashion-MNIST: the README's default run.

  python -m lenet_jax.train --config configs/fashion.py --workdir runs/fashion
  python -m lenet_jax.train --config configs/fashion.py:smoke --workdir runs/smoke

Expected: final test accuracy >= 0.90 — measured 0.9075 after 12 epochs on jax 0.12.0.1
(0.9054 on jax 0.10.2), ~50 s of training on a 2-core CPU (0.90 first reached at epoch 8).
"""

import ml_collections

from lenet_jax.config import base_config, with_variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config()
    config.dataset = "fashion_mnist"
    config.model.name = "lenet_modern"
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3  # peak, reached after the warmup
    config.optimizer.schedule = "warmup_cosine"
    config.optimizer.warmup_epochs = 1.0
    config.batch_size = 128
    config.num_epochs = 12
    return with_variant(config, arg)
