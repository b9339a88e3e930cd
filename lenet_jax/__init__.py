"""lenet_jax: LeNet-5 and the CIFAR-10 CNN trained with JAX, Flax, optax and orbax."""

__version__ = "0.1.0"
