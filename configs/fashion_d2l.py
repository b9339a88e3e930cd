"""The d2l LeNet-5 experiment: sigmoid, average pooling, Glorot-uniform init, SGD lr 0.9.

  python -m lenet_jax.train --config configs/fashion_d2l.py --workdir runs/fashion_d2l

Expected: about d2l's 0.795 test accuracy after 10 epochs of batch 256, or better
(measured figures: the README's Configs and Results tables).
"""

import ml_collections

from lenet_jax.config import base_config, with_variant


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = base_config()
    config.dataset = "fashion_mnist"
    config.model.name = "lenet_d2l"
    config.model.kernel_init = "glorot_uniform"  # d2l's nn.init.xavier_uniform_
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.9
    config.optimizer.momentum = 0.0  # plain SGD, as d2l
    config.optimizer.schedule = "constant"
    config.batch_size = 256
    config.num_epochs = 10
    return with_variant(config, arg)
