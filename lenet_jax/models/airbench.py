"""airbench's CIFAR-10 network (Keller Jordan's airbench94), as a linen module.

    whiten 2x2 (frozen, from the data) -> GELU
    -> 3 x [conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU]
    -> max-pool 3 -> dense (no bias) -> x 1/9

Two inits make it train in a few epochs:
  * The first convolution whitens 2x2 patches. Its kernel is computed from the images the
    module is initialised with (`config.init_images` sends it a batch of training images):
    the patches' covariance's eigenvectors scaled by 1/sqrt(eigenvalue), and their
    negatives, so after the GELU both signs survive. The recipe freezes it
    (`config.freeze`); only its bias trains.
  * Every 3x3 convolution starts as the identity on its first `in` output channels (a Dirac
    kernel), the rest at PyTorch's default uniform init, so the deep path starts as a
    shortcut.
BatchNorm learns its shift only (its scale stays 1), which is why its biases want a far
larger learning rate than the weights (a parameter group in configs/cifar10_airbench.py).
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from lenet_jax.ops import layers, patch_grad

WHITEN_EPS = 5e-4  # added to the eigenvalues: bounds the gain on near-constant directions
# PyTorch's default nn.Linear init, uniform with bound 1/sqrt(fan_in) (flax's default is a
# normal with that standard deviation, sqrt(3) times wider).
TORCH_LINEAR_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def patches(images: jax.Array, size: int) -> jax.Array:
    """Every `size`x`size` patch of NHWC `images` (stride 1, no padding) as a row, flattened
    in the (row, column, channel) order of a flax conv kernel's first three axes."""
    return patch_grad.patches(images, (size, size)).reshape(-1, size * size * images.shape[-1])


def whitening_kernel(images: jax.Array, size: int, eps: float = WHITEN_EPS) -> jax.Array:
    """A (size, size, channels, 2*size*size*channels) conv kernel whose outputs on the
    patches of `images` are decorrelated with unit variance (plus their negatives).

    Output channel k < d is the k-th principal direction (largest variance first) scaled
    by 1/sqrt(eigenvalue + eps); channel d + k is its negative.
    """
    flat = patches(images.astype(jnp.float32), size)
    covariance = flat.T @ flat / flat.shape[0]
    eigenvalues, eigenvectors = jnp.linalg.eigh(covariance)  # ascending
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    scaled = eigenvectors / jnp.sqrt(jnp.maximum(eigenvalues, 0.0) + eps)
    kernel = jnp.concatenate([scaled, -scaled], axis=1)
    return kernel.reshape(size, size, images.shape[-1], kernel.shape[-1])


def dirac_init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """PyTorch's default conv init (uniform, bound 1/sqrt(fan_in)), with output channel i
    replaced by the identity on input channel i for i < min(in, out)."""
    height, width, fan_in_channels, out_channels = shape
    bound = 1.0 / jnp.sqrt(height * width * fan_in_channels)
    kernel = jax.random.uniform(key, shape, dtype, -bound, bound)
    n = min(fan_in_channels, out_channels)
    identity = jnp.zeros((height, width, n, n), dtype)
    identity = identity.at[height // 2, width // 2].set(jnp.eye(n, dtype=dtype))
    return kernel.at[:, :, :n, :n].set(identity)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """`nn.max_pool(x, (2, 2), strides=(2, 2))` as a reshape and a max: the same values, and
    a backward pass XLA's CPU runs faster than the pooling window's select-and-scatter."""
    batch, height, width, channels = x.shape
    rows, cols = height // 2, width // 2
    x = x[:, : 2 * rows, : 2 * cols]
    return x.reshape(batch, rows, 2, cols, 2, channels).max(axis=(2, 4))


class Whiten(nn.Module):
    """The patch-whitening convolution (valid padding), initialised from its first input."""

    size: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", lambda _key: whitening_kernel(x, self.size))
        bias = self.param("bias", nn.initializers.zeros, (kernel.shape[-1],))
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            kernel.astype(self.dtype),
            window_strides=(1, 1),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + bias.astype(self.dtype)


class ConvGroup(nn.Module):
    """conv -> pool -> BN -> GELU -> conv -> BN -> GELU, both convs Dirac-initialised."""

    features: int
    batchnorm_momentum: float  # Airbench's, in flax's convention
    dtype: Any = jnp.float32
    conv_impl: str = "auto"  # a name from lenet_jax.ops.conv.CONV_IMPLS
    batch_axis: str | None = None  # the axis its BatchNorm statistics average over

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        for i in range(2):
            x = layers.conv(
                self.features,
                (3, 3),
                impl=self.conv_impl,
                padding="SAME",
                use_bias=False,
                kernel_init=dirac_init,
                dtype=self.dtype,
            )(x)
            if i == 0:
                x = max_pool_2x2(x)
            x = layers.batch_norm(
                train=train,
                momentum=self.batchnorm_momentum,
                axis_name=self.batch_axis,
                epsilon=1e-12,
                use_scale=False,
                dtype=self.dtype,
            )(x)
            x = nn.gelu(x, approximate=False)
        return x


class Airbench(nn.Module):
    """airbench94's network; `widths` (64, 256, 256) is airbench94's, narrower is faster."""

    num_classes: int = 10
    widths: Sequence[int] = (64, 256, 256)
    whiten_size: int = 2
    # flax's convention: the running statistics keep 0.4 of themselves each step, which is
    # airbench94's PyTorch momentum 0.6.
    batchnorm_momentum: float = 0.4
    logit_scale: float = 1 / 9
    dtype: Any = jnp.float32
    conv_impl: str = "auto"  # a name from lenet_jax.ops.conv.CONV_IMPLS
    # Filled in by the run: the device axis the BatchNorm statistics average over under pmap.
    batch_axis: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = nn.gelu(Whiten(self.whiten_size, dtype=self.dtype)(x), approximate=False)
        for width in self.widths:
            group = ConvGroup(
                width,
                self.batchnorm_momentum,
                self.dtype,
                self.conv_impl,
                batch_axis=self.batch_axis,
            )
            x = group(x, train=train)
        x = jnp.max(x, axis=(1, 2))  # airbench's max-pool 3 over the last 3x3 map
        logits = nn.Dense(
            self.num_classes, use_bias=False, kernel_init=TORCH_LINEAR_INIT, dtype=self.dtype
        )(x)
        return logits * self.logit_scale
