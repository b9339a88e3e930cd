"""XLA's convolution, with both of its gradients written as plain forward convolutions.

Differentiating `lax.conv_general_dilated` gives XLA two backward convolutions whose
operands are laid out unlike a forward one's: the input gradient correlates the output's
gradient with the kernel read with its input and output axes swapped, and the kernel
gradient contracts over the batch and the feature map. XLA:CPU normally rewrites both into
the forward form its fast convolution takes, but inside a `lax.scan` (the scanned epoch,
`config.epoch_loop=scan`) it leaves them in their own layout and runs them as naive loops,
many times slower than the same step in the Python loop (`scripts/scan_bench.py` measures
both).

`forward_grad_conv` keeps XLA's convolution for the forward pass and writes each gradient
as an ordinary NHWC x HWIO forward convolution, which XLA runs alike in a loop and a scan:
  * input gradient: the output's gradient, padded by the kernel's size less one less the
    forward padding, correlated with the kernel flipped in space and with its input and
    output axes swapped;
  * kernel gradient: the input's channels as the batch and its batch as the channels,
    correlated with the output's gradient as the kernel (its batch as the input channels),
    accumulated in float32, then transposed back to HWIO.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
Padding = tuple[tuple[int, int], tuple[int, int]]


def _conv(x, kernel, padding, precision, preferred_element_type=None) -> jax.Array:
    return lax.conv_general_dilated(
        x,
        kernel,
        (1, 1),
        padding,
        dimension_numbers=_NHWC,
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def forward_grad_conv(x: jax.Array, kernel: jax.Array, padding: Padding, precision=None):
    """Stride-1 cross-correlation of NHWC `x` with an HWIO `kernel`, zero-padded by
    `padding` ((top, bottom), (left, right), non-negative): XLA's, with `input_gradient`
    and `kernel_gradient` as its VJP."""
    return _conv(x, kernel, padding, precision)


def _forward(x, kernel, padding, precision):
    return _conv(x, kernel, padding, precision), (x, kernel)


def _backward(padding, precision, residuals, grad):
    x, kernel = residuals
    grad_x = input_gradient(grad, kernel, x.shape[1:3], padding, precision)
    grad_kernel = kernel_gradient(x, grad, kernel.shape[:2], padding, precision)
    return grad_x.astype(x.dtype), grad_kernel.astype(kernel.dtype)


forward_grad_conv.defvjp(_forward, _backward)


def input_gradient(grad, kernel, size, padding: Padding, precision=None) -> jax.Array:
    """The gradient of sum(grad * conv(x, kernel)) with respect to the NHWC `x` of spatial
    `size`: a forward convolution of `grad` with the flipped, in/out-swapped kernel."""
    flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)  # (kh, kw, out, in)
    # Padded by k - 1 on each side, the correlation gives the padded input's gradient;
    # less the forward padding, the input's. A forward pad beyond k - 1 is cropped after.
    full = [(k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel.shape[:2], padding, strict=True)]
    clamped = [(max(lo, 0), max(hi, 0)) for lo, hi in full]
    grad_x = _conv(grad, flipped, clamped, precision)
    if clamped != full:
        (top, _), (left, _) = full
        grad_x = grad_x[:, -min(top, 0) :, -min(left, 0) :][:, : size[0], : size[1]]
    return grad_x


def kernel_gradient(x, grad, kernel_size, padding: Padding, precision=None) -> jax.Array:
    """The gradient of sum(grad * conv(x, kernel)) with respect to the (kh, kw, in, out)
    kernel, in float32: a forward convolution of the input's channels (as a batch, its
    batch as channels) with the output's gradient (as an HWIO kernel, batch as input)."""
    channels_first = jnp.transpose(x, (3, 1, 2, 0))  # (in, h, w, batch)
    as_kernel = jnp.transpose(grad, (1, 2, 0, 3))  # (out h, out w, batch, out)
    total = _conv(channels_first, as_kernel, padding, precision, jnp.float32)  # (in, kh, kw, out)
    assert total.shape[1:3] == tuple(kernel_size), (total.shape, kernel_size)
    return jnp.transpose(total, (1, 2, 0, 3))
