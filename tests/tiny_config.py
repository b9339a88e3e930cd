"""The tests' own config: the modern LeNet-5 (ReLU, max-pool, no BatchNorm or augmentation,
XLA's convolutions) with Adam and a warmup-cosine schedule, fixed here so a recipe change in
`configs/` leaves the tests' expectations (exact equalities across strategies, accumulation,
resume) alone.

  python -m lenet_jax.train --config tests/tiny_config.py:smoke --workdir /tmp/smoke
"""

import ml_collections

from lenet_jax.config import base_config, with_variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config()
    config.dataset = "fashion_mnist"
    config.model.name = "lenet_modern"
    # XLA's own convolutions: `auto` picks the banded ones for LeNet on a CPU, whose many
    # slices take longer to trace and compile than the tests' few steps take to run. That
    # path keeps its own tests (test_conv.py, test_band_conv.py) and every stock config's.
    config.model.conv_impl = "xla"
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3  # peak, reached after the warmup
    config.optimizer.schedule = "warmup_cosine"
    config.optimizer.warmup_epochs = 1.0
    config.batch_size = 128
    config.num_epochs = 12
    return with_variant(config, arg)
