"""The CIFAR-10 CNN with BatchNorm, dropout, on-device augmentation and a one-cycle schedule.

  python -m lenet_jax.train --config configs/cifar10_aug.py --workdir runs/cifar10_aug \\
      --config.data_dir=$(python scripts/prepare_cifar10.py)

Same conv32-conv64-fc128-fc10 network as configs/cifar10.py, BatchNorm after each conv;
random crop (reflect-pad 4) and horizontal flip drawn per example from the step key;
SGD with Nesterov momentum on a one-cycle learning rate. Expected: >= 0.80 test accuracy
in 30 epochs on the JPEG copy of CIFAR-10 (measured figures: the README's Configs table).
"""

import ml_collections

from lenet_jax.config import base_config, with_variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config()
    config.dataset = "cifar10"
    config.data_dir = ""  # an image folder <split>/<class>/<image>; "" = TFDS
    config.model.name = "cifar_cnn_bn"
    config.model.dropout_rate = 0.25  # before the last dense layer
    config.augment.crop_padding = 4
    config.augment.flip = True
    config.augment.cutout_size = 0
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.1  # one-cycle peak
    config.optimizer.momentum = 0.9
    config.optimizer.nesterov = True
    config.optimizer.weight_decay = 5e-4
    config.optimizer.schedule = "onecycle"
    config.label_smoothing = 0.1
    config.batch_size = 128
    config.num_epochs = 30
    config.log_every_steps = 100
    return with_variant(config, arg)
