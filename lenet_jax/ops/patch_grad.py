"""XLA's convolution, with its kernel gradient computed as chunked patch matmuls.

XLA:CPU runs a stride-1 convolution's forward pass and its input gradient close to its
matmul speed, but its kernel gradient (the input correlated with the output's gradient
over the whole batch and feature map) several times slower, the more so the larger the
feature map (the README's performance section has the figures). `patch_grad_conv` keeps
XLA's convolution for the forward pass and the input gradient, and computes the kernel
gradient as a `lax.scan` over chunks of the batch: each chunk's input patches (im2col)
times its output gradient, summed. The chunks are sized so that their patches stay in the
cores' caches (`PATCH_CHUNK_BYTES`); the whole batch's patches in one matmul are no faster
than XLA's convolution, because they stream through memory.
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

# The patches one chunk of the kernel gradient multiplies: about what two cores' L2
# caches hold, where the chunked matmul ran fastest across airbench's and the CIFAR
# CNNs' layer shapes.
PATCH_CHUNK_BYTES = 2 * 2**20
_NHWC = ("NHWC", "HWIO", "NHWC")
Padding = tuple[tuple[int, int], tuple[int, int]]


def chunk_size(example_bytes: int, batch: int) -> int:
    """How many examples' patches one step of the scan multiplies."""
    return max(1, min(batch, PATCH_CHUNK_BYTES // max(example_bytes, 1)))


def _conv(x: jax.Array, kernel: jax.Array, padding: Padding, precision) -> jax.Array:
    return lax.conv_general_dilated(
        x, kernel, (1, 1), padding, dimension_numbers=_NHWC, precision=precision
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def patch_grad_conv(x: jax.Array, kernel: jax.Array, padding: Padding, precision=None):
    """Stride-1 cross-correlation of NHWC `x` with an HWIO `kernel`, zero-padded by
    `padding` ((top, bottom), (left, right)): XLA's, with `kernel_gradient` as its VJP
    for the kernel."""
    return _conv(x, kernel, padding, precision)


def _forward(x, kernel, padding, precision):
    return _conv(x, kernel, padding, precision), (x, kernel)


def _backward(padding, precision, residuals, grad):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda x: _conv(x, kernel, padding, precision), x)
    (grad_x,) = input_vjp(grad)
    grad_kernel = kernel_gradient(x, grad, kernel.shape[:2], padding, precision)
    return grad_x, grad_kernel.astype(kernel.dtype)


patch_grad_conv.defvjp(_forward, _backward)


def patches(x: jax.Array, kernel_size: Sequence[int]) -> jax.Array:
    """(n, out h, out w, kh * kw * channels): each output pixel's receptive field in NHWC
    `x` (stride 1, no padding), in the (row, column, channel) order of an HWIO kernel's
    first three axes."""
    kh, kw = kernel_size
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return jnp.concatenate(
        [x[:, i : i + oh, j : j + ow] for i in range(kh) for j in range(kw)], axis=-1
    )


def kernel_gradient(
    x: jax.Array, grad: jax.Array, kernel_size: Sequence[int], padding: Padding, precision=None
) -> jax.Array:
    """The gradient of sum(grad * conv(x, kernel)) with respect to the (kh, kw, in, out)
    kernel, in float32, summed over the batch one cache-sized chunk at a time."""
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    batch, channels = x.shape[0], x.shape[-1]
    _, out_h, out_w, features = grad.shape
    kh, kw = kernel_size
    rows = kh * kw * channels

    def product(x_chunk, grad_chunk):
        return lax.dot_general(
            patches(x_chunk, kernel_size).reshape(-1, rows),
            grad_chunk.reshape(-1, features),
            (((0,), (0,)), ((), ())),
            precision=precision,
            preferred_element_type=jnp.float32,
        )

    size = chunk_size(out_h * out_w * rows * x.dtype.itemsize, batch)
    steps = batch // size
    full = steps * size

    def accumulate(total, chunk):
        return total + product(*chunk), None

    chunks = (
        x[:full].reshape(steps, size, *x.shape[1:]),
        grad[:full].reshape(steps, size, *grad.shape[1:]),
    )
    total, _ = lax.scan(accumulate, jnp.zeros((rows, features), jnp.float32), chunks)
    if full < batch:
        total = total + product(x[full:], grad[full:])
    return total.reshape(kh, kw, channels, features)
