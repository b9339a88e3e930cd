"""`Conv`: a drop-in for `flax.linen.Conv` (same parameters) whose convolution is chosen per
backend and shape, because XLA:CPU runs some convolution shapes far below its matmul speed.

Measured on a 2-core CPU (jax 0.10.2, scripts/benchmark.py): the first LeNet convolution
(one input channel, 5x5, batch 256) took ~20-30 ms through `lax.conv_general_dilated` and
~1.5 ms as a sum of 25 shifted outer products, which XLA fuses into one loop. Gradients
still come from `lax.conv`'s own rules (a custom VJP), which XLA:CPU runs well for this
shape, so values and gradients match the plain flax layer.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
Padding = tuple[tuple[int, int], tuple[int, int]]


def lax_conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMENSIONS)


def shifted_sum_conv(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
    """The convolution as sum over kernel taps of (shifted input) @ (tap's Cin x Cout matrix)."""
    kh, kw = kernel.shape[:2]
    x = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    taps = [
        x[:, i : i + out_h, j : j + out_w, :] @ kernel[i, j] for i in range(kh) for j in range(kw)
    ]
    return functools.reduce(jnp.add, taps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _shifted_forward_lax_backward(x, kernel, padding):
    return shifted_sum_conv(x, kernel, padding)


def _forward(x, kernel, padding):
    return shifted_sum_conv(x, kernel, padding), (x, kernel)


def _backward(padding, residuals, cotangent):
    x, kernel = residuals
    return jax.vjp(lambda x, k: lax_conv(x, k, padding), x, kernel)[1](cotangent)


_shifted_forward_lax_backward.defvjp(_forward, _backward)


def conv2d(x: jax.Array, kernel: jax.Array, padding: Padding, *, impl: str = "auto") -> jax.Array:
    """Stride-1 NHWC convolution. `impl`: "lax", "shifted", or "auto" (the faster per backend)."""
    if impl == "auto":
        impl = "shifted" if jax.default_backend() == "cpu" and kernel.shape[2] == 1 else "lax"
    if impl == "shifted":
        return _shifted_forward_lax_backward(x, kernel, padding)
    if impl == "lax":
        return lax_conv(x, kernel, padding)
    raise ValueError(f"unknown conv impl {impl!r}; known: ['auto', 'lax', 'shifted']")


def _explicit_padding(padding: int | str, kernel_size: Sequence[int]) -> Padding:
    if padding == "VALID":
        return ((0, 0), (0, 0))
    if padding == "SAME":
        return tuple(((k - 1) // 2, k // 2) for k in kernel_size)
    return ((padding, padding), (padding, padding))


class Conv(nn.Module):
    """Stride-1 2-D convolution with the parameters (`kernel` HWIO, `bias`) of `nn.Conv`."""

    features: int
    kernel_size: tuple[int, int]
    padding: int | str = "SAME"
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, shape, jnp.float32)
        y = conv2d(
            x,
            kernel.astype(x.dtype),
            _explicit_padding(self.padding, self.kernel_size),
            impl=self.impl,
        )
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
            y = y + bias.astype(y.dtype)
        return y
