"""Modern LeNet-5 on MNIST digits.

  python -m lenet_jax.train --config configs/mnist.py --workdir runs/mnist \
      --config.data_dir=/path/to/mnist-idx   # the four upstream .gz files

Without data_dir, TFDS provides MNIST on an online machine (pip install 'lenet_jax[tf]').
Expected: about 0.99 test accuracy.
"""

import ml_collections

from lenet_jax.config import base_config, with_variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config()
    config.dataset = "mnist"
    config.model.name = "lenet_modern"
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 2e-3
    config.optimizer.schedule = "warmup_cosine"
    config.optimizer.warmup_epochs = 1.0
    config.batch_size = 128
    config.num_epochs = 8
    return with_variant(config, arg)
