"""The CIFAR-10 CNN of the tutorial (conv32-conv64-fc128-fc10), trained with Adam.

  python scripts/prepare_cifar10.py          # extracts ../shared/data/cifar10-jpeg.tar.gz once
  python -m lenet_jax.train --config configs/cifar10.py --workdir runs/cifar10 \\
      --config.data_dir=$(python scripts/prepare_cifar10.py)

The tutorial's recipe (Adam lr 1e-3, batch 64, 10 epochs), with per-channel normalisation
and the learning rate decayed on a cosine. Expected: >= 0.70 test accuracy on the JPEG
copy of CIFAR-10 (measured figures: the README's Configs table).
"""

import ml_collections

from lenet_jax.config import base_config, with_variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config()
    config.dataset = "cifar10"
    config.data_dir = ""  # an image folder <split>/<class>/<image>; "" = TFDS
    config.model.name = "cifar_cnn"
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.schedule = "cosine"
    config.batch_size = 64
    config.num_epochs = 10
    config.log_every_steps = 200
    return with_variant(config, arg)
