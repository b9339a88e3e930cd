"""Convolution as a banded matmul: XLA:CPU's fast path for layers with few input channels.

XLA:CPU runs small-channel convolutions far below its matmul speed, worst in the backward
pass (the README's performance section has the figures). `band_conv` rewrites a stride-1
convolution as one matmul per tile of `tile` output columns: each output row gathers its
kernel's input rows (the matmul's K = kernel rows x tile input columns x channels), and
the weight becomes a banded (K, tile x out channels) matrix built from the kernel. Its
gradients are matmuls and cheap slices too. The band multiplies zeros: per output pixel
it does (tile + kernel width - 1) / kernel width times the convolution's work.

`lenet_jax.ops.conv` chooses it for the layers with few input channels.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def band_tile(out_width: int, kernel_width: int) -> int:
    """The smallest divisor of `out_width` that is at least kernel_width - 1.

    That keeps the band's zeros few while the matmul stays wide enough to run at speed
    (LeNet: tiles of 4 of 28 columns for conv 1, 5 of 10 for conv 2).
    """
    for tile in range(max(kernel_width - 1, 1), out_width + 1):
        if out_width % tile == 0:
            return tile
    return out_width


@functools.cache
def _band_selection(kernel_width: int, tile: int) -> np.ndarray:
    """s[j, a, o] = 1 where input column a of a tile feeds output column o through tap j."""
    s = np.zeros((kernel_width, tile + kernel_width - 1, tile), np.float32)
    for j in range(kernel_width):
        s[j, np.arange(tile) + j, np.arange(tile)] = 1.0
    return s


def band_conv(x: jax.Array, kernel: jax.Array, tile: int | None = None, precision=None):
    """VALID, stride-1 cross-correlation of NHWC `x` with an HWIO `kernel`, as matmuls."""
    kh, kw, cin, cout = kernel.shape
    batch, height, width, _ = x.shape
    out_h, out_w = height - kh + 1, width - kw + 1
    tile = tile or band_tile(out_w, kw)
    if out_w % tile:
        raise ValueError(f"tile {tile} does not divide the output width {out_w}")
    tiles, tile_w = out_w // tile, tile + kw - 1
    # (batch, rows, tiles, tile_w * cin): the input columns each output tile reads.
    columns = jnp.stack([x[:, :, t * tile : t * tile + tile_w] for t in range(tiles)], axis=2)
    columns = columns.reshape(batch, height, tiles, tile_w * cin)
    # (batch, out rows, tiles, kh * tile_w * cin): each output row's receptive field.
    rows = jnp.concatenate([columns[:, i : i + out_h] for i in range(kh)], axis=-1)
    selection = jnp.asarray(_band_selection(kw, tile), kernel.dtype)
    band = jnp.einsum("jao,ijcd->iacod", selection, kernel, precision=precision)
    band = band.reshape(kh * tile_w * cin, tile * cout)
    out = _matmul(rows, band, precision)  # (batch, out_h, tiles, tile * cout)
    return out.reshape(batch, out_h, out_w, cout)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul(rows: jax.Array, band: jax.Array, precision) -> jax.Array:
    """rows @ band, with its gradients spelled as two plain 2-D matmuls.

    Left to autodiff, XLA:CPU folds the band's construction into the weight-gradient
    matmul and runs that fused matmul far slower than these two.
    """
    return jnp.matmul(rows, band, precision=precision)


def _matmul_forward(rows, band, precision):
    return _matmul(rows, band, precision), (rows, band)


def _matmul_backward(precision, residuals, grad):
    rows, band = residuals
    rows_2d = rows.reshape(-1, rows.shape[-1])
    grad_2d = grad.reshape(-1, grad.shape[-1])
    grad_rows = jnp.matmul(grad, band.T, precision=precision)
    grad_band = jnp.matmul(rows_2d.T, grad_2d, precision=precision)
    return grad_rows, grad_band


_matmul.defvjp(_matmul_forward, _matmul_backward)
