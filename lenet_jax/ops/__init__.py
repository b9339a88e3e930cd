"""Reusable ops for any model: the banded convolution and layer helpers (tested equal to flax's)."""
