"""Which convolution each layer runs: `model.conv_impl`, and the `nn.Conv` drop-in that obeys it.

XLA's own convolution is the fast one on GPU and TPU. On XLA:CPU parts of it are slow, and
each has a replacement here:
  * `band`: layers with few input channels, forward and backward, run as banded matmuls
    (`band_conv`): LeNet's 5x5 layers with 1 and 6 input channels, faster than XLA's
    convolution or `forward_grad` in the Python loop and in the scanned epoch alike, and
    CIFAR's 3x3 one with 3 input channels, about as fast as `forward_grad`;
  * `forward_grad`: XLA's forward pass, with both gradients written as plain forward
    convolutions (`forward_grad`). In the Python loop that is as fast as XLA's own
    gradients; inside a `lax.scan` (`config.epoch_loop=scan`) XLA:CPU runs its own
    backward convolutions as naive loops, many times slower, and these as usual;
  * `patch_grad`: XLA's forward pass and input gradient, with the kernel gradient as
    chunked patch matmuls (`patch_grad`). It was faster than XLA's kernel gradient under
    XLA's default CPU options; under the options the trainer compiles with
    (`training/compile_options.py`) whole steps are no faster with it than with
    `forward_grad`, and its input gradient has the scan's slowness, so `auto` no longer
    picks it.
`auto` picks per layer: on the CPU backend, `band` up to `BAND_MAX_IN_FEATURES` input
channels and `forward_grad` above; XLA's convolution on any other backend. `xla` is XLA's
everywhere. Convolutions none covers (strides, dilation, groups, other layouts) always go
to XLA's. Parameters keep nn.Conv's names and shapes, so checkpoints do not depend on the
choice. `scripts/scan_bench.py` (whole steps and single layers, in the loop and in the
scan) and `scripts/conv_bench.py` (each part of larger layers) measure the choice.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from lenet_jax.ops.band_conv import band_conv
from lenet_jax.ops.forward_grad import forward_grad_conv
from lenet_jax.ops.patch_grad import patch_grad_conv

CONV_IMPLS = ("auto", "xla", "band", "patch_grad", "forward_grad")
# Where the band beat XLA's convolution on whole train steps on the CPU: LeNet's 1- and
# 6-channel inputs (and forward_grad too); CIFAR's 3-channel input about as fast as
# forward_grad; not its 32-channel one.
BAND_MAX_IN_FEATURES = 7
_NHWC = ("NHWC", "HWIO", "NHWC")


def chosen_impl(impl: str, in_features: int, backend: str | None = None) -> str:
    """The convolution `impl` runs for a plain layer with `in_features` input channels."""
    if impl not in CONV_IMPLS:
        raise ValueError(f"unknown conv_impl {impl!r}; known: {list(CONV_IMPLS)}")
    if impl != "auto":
        return impl
    if (backend or jax.default_backend()) != "cpu":
        return "xla"
    return "band" if in_features <= BAND_MAX_IN_FEATURES else "forward_grad"


def _explicit_padding(padding, x_shape, k_shape) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str):
        pads = lax.padtype_to_pads(x_shape[1:3], k_shape[:2], (1, 1), padding)
    else:
        pads = padding
    return tuple((int(lo), int(hi)) for lo, hi in pads)


def _is_plain(lhs, rhs, window_strides, lhs_dilation, rhs_dilation, dimension_numbers, groups):
    ones = lambda v: v is None or all(d == 1 for d in v)  # noqa: E731
    return (
        lhs.ndim == 4
        and groups == 1
        and ones(window_strides)
        and ones(lhs_dilation)
        and ones(rhs_dilation)
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
    )


def _fits(x_shape, k_shape, pads) -> bool:
    """Whether the padded input holds the kernel, padded by non-negative amounts only."""
    return all(
        lo >= 0 and hi >= 0 and size + lo + hi >= k
        for size, k, (lo, hi) in zip(x_shape[1:3], k_shape[:2], pads, strict=True)
    )


def conv_general_dilated(impl: str = "auto") -> Callable:
    """A `lax.conv_general_dilated` for nn.Conv that runs the convolution `impl` chooses."""

    def conv(
        lhs,
        rhs,
        window_strides: Sequence[int],
        padding,
        lhs_dilation=None,
        rhs_dilation=None,
        dimension_numbers=None,
        feature_group_count: int = 1,
        batch_group_count: int = 1,
        precision=None,
        preferred_element_type=None,
    ):
        plain = (
            batch_group_count == 1
            and preferred_element_type is None
            and _is_plain(
                lhs, rhs, window_strides, lhs_dilation, rhs_dilation,
                dimension_numbers, feature_group_count,
            )
        )  # fmt: skip
        chosen = chosen_impl(impl, rhs.shape[2])
        if plain and chosen != "xla":
            pads = _explicit_padding(padding, lhs.shape, rhs.shape)
            if _fits(lhs.shape, rhs.shape, pads):
                if chosen == "band":
                    x = jnp.pad(lhs, ((0, 0), *pads, (0, 0))) if any(any(p) for p in pads) else lhs
                    return band_conv(x, rhs, precision=precision)
                if chosen == "forward_grad":
                    return forward_grad_conv(lhs, rhs, pads, precision)
                return patch_grad_conv(lhs, rhs, pads, precision)
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count,
            batch_group_count=batch_group_count,
            precision=precision,
            preferred_element_type=preferred_element_type,
        )

    return conv
