"""On-device augmentation of float NHWC batches: pure functions of (key, images).

They run inside the jitted train step, so the host only ships raw batches. Each example
draws from its own key (the one key split over the batch), so a resumed run that replays
the step's key replays the same augmentations. Alternating flips are the exception: their
start is fixed on the host (`mirror_half`), and the step mirrors whole epochs.
"""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

# (key, images, a sweep's member's values or None) -> images
Augment = Callable[[jax.Array, jax.Array, Mapping | None], jax.Array]
CUTOUT_SIZE = "augment.cutout_size"  # its name among a sweep's values


def example_keys(key: jax.Array, batch: int, axis_name: str | None = None) -> jax.Array:
    """One key per example of a batch: `key` split `batch` ways; under pmap (`axis_name`),
    this device's slice of `key` split over the global batch, so every example draws what
    it would on one device and the strategies train alike."""
    if axis_name is None:
        return jax.random.split(key, batch)
    devices = jax.lax.psum(1, axis_name)  # the axis size, a Python int
    every = jax.random.split(key, batch * devices)
    return jax.lax.dynamic_slice_in_dim(every, jax.lax.axis_index(axis_name) * batch, batch)


def flip(images: jax.Array) -> jax.Array:
    """Mirrors every image left to right."""
    return jnp.flip(images, axis=-2)


def random_flip(key: jax.Array, images: jax.Array, axis_name: str | None = None) -> jax.Array:
    """Mirrors each image left to right with probability 1/2."""
    keys = example_keys(key, images.shape[0], axis_name)
    mirror = jax.vmap(jax.random.bernoulli)(keys)
    return jnp.where(mirror[:, None, None, None], flip(images), images)


ALTERNATING_FLIP_SALT = 0xF11B  # keeps mirror_half's draw apart from the seed's other uses


def mirror_half(images: np.ndarray, seed: int) -> np.ndarray:
    """A copy of NHWC `images` with a random half of them mirrored, the half fixed by `seed`:
    alternating flips' start (airbench).

    The train step then mirrors every batch of each odd epoch, so each image is seen
    mirrored and unmirrored in turn, epoch by epoch, instead of on a fresh coin each step:
    every two epochs show both views of every image. The choice is on the host because the
    step does not know which examples its batch holds.
    """
    mirrored = np.random.default_rng([seed, ALTERNATING_FLIP_SALT]).random(len(images)) < 0.5
    out = np.array(images)
    out[mirrored] = out[mirrored][:, :, ::-1]
    return out


def random_crop(
    key: jax.Array, images: jax.Array, padding: int = 4, axis_name: str | None = None
) -> jax.Array:
    """Reflect-pads each side by `padding`, then crops each image back to its size at random.

    Reflection, not zeros, so a shifted image gains no black border the test set never has.
    """
    _, height, width, channels = images.shape
    if not 0 <= padding < min(height, width):
        raise ValueError(f"crop padding must be in [0, {min(height, width)}), got {padding}")
    pad = (padding, padding)
    padded = jnp.pad(images, ((0, 0), pad, pad, (0, 0)), mode="reflect")

    def crop_one(key: jax.Array, image: jax.Array) -> jax.Array:
        top, left = jax.random.randint(key, (2,), 0, 2 * padding + 1)
        return jax.lax.dynamic_slice(image, (top, left, 0), (height, width, channels))

    keys = example_keys(key, images.shape[0], axis_name)
    return jax.vmap(crop_one)(keys, padded)


def cutout(key: jax.Array, images: jax.Array, size: int, axis_name: str | None = None) -> jax.Array:
    """Zeroes a `size`x`size` square at a random centre in each image, clipped at the borders.

    The centre may lie anywhere in the image (DeVries & Taylor, 2017), so squares near an
    edge cover fewer pixels.
    """
    if isinstance(size, int) and size < 0:  # a sweep's is traced (its check came first)
        raise ValueError(f"cutout size must be >= 0, got {size}")
    _, height, width, _ = images.shape

    def mask_one(key: jax.Array) -> jax.Array:
        centre_y, centre_x = jax.random.randint(key, (2,), 0, jnp.array([height, width]))
        top, left = centre_y - size // 2, centre_x - size // 2
        rows = jnp.arange(height)[:, None]
        cols = jnp.arange(width)[None, :]
        return (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)

    keys = example_keys(key, images.shape[0], axis_name)
    masks = jax.vmap(mask_one)(keys)
    return jnp.where(masks[..., None], jnp.zeros_like(images), images)


def translate(images: jax.Array, dy: int, dx: int) -> jax.Array:
    """Shifts every image by (dy, dx) pixels, the edges reflected in (as `random_crop` pads)."""
    pad = max(abs(dy), abs(dx))
    if not pad:
        return images
    _, height, width, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    top, left = pad - dy, pad - dx
    return padded[:, top : top + height, left : left + width]


TTA = ("none", "flip", "flip_translate")  # what config.eval_tta accepts


def tta_views(images: jax.Array, mode: str) -> list[tuple[float, jax.Array]]:
    """(weight, view) pairs whose weighted logits are the test-time-augmented prediction.

    `flip`: the image and its mirror, half each. `flip_translate` (airbench's level 2): half
    on those two, half on the four views shifted by one pixel up-left and down-right, and
    their mirrors.
    """
    if mode not in TTA:
        raise ValueError(f"unknown test-time augmentation {mode!r}; known: {list(TTA)}")
    if mode == "none":
        return [(1.0, images)]
    if mode == "flip":
        return [(0.5, images), (0.5, flip(images))]
    shifted = [translate(images, 1, 1), translate(images, -1, -1)]
    base = [(0.25, images), (0.25, flip(images))]
    return base + [(0.125, view) for s in shifted for view in (s, flip(s))]


def make_augment(
    *,
    crop_padding: int = 0,
    flip: bool = False,
    flip_alternating: bool = False,
    cutout_size: int = 0,
    axis_name: str | None = None,
    swept: tuple[str, ...] = (),
) -> Augment | None:
    """Chains the enabled augmentations (crop, then flip, then cutout); None if none is.

    Each stage has a fixed subkey, so enabling one stage leaves the others' draws unchanged.
    Alternating flips (`flip_alternating`) draw nothing here: `mirror_half` and the train
    step's odd-epoch mirror make them. Under pmap, `axis_name` makes each device draw its
    examples' share of the global batch's draws (`example_keys`). Where a sweep varies the
    cutout's size (`CUTOUT_SIZE` in `swept`), the stage reads it from the member's values
    at each call: a size of 0 zeroes nothing, as no stage would.
    """
    if crop_padding < 0 or cutout_size < 0:
        raise ValueError(f"augmentation sizes must be >= 0: {crop_padding=}, {cutout_size=}")
    stages: list[tuple[int, Augment]] = []
    if crop_padding:
        stages.append((0, lambda k, x, _: random_crop(k, x, crop_padding, axis_name)))
    if flip and not flip_alternating:
        stages.append((1, lambda k, x, _: random_flip(k, x, axis_name)))
    if CUTOUT_SIZE in swept:
        stages.append((2, lambda k, x, values: cutout(k, x, values[CUTOUT_SIZE], axis_name)))
    elif cutout_size:
        stages.append((2, lambda k, x, _: cutout(k, x, cutout_size, axis_name)))
    if not stages:
        return None

    def augment(key: jax.Array, images: jax.Array, values: Mapping | None = None) -> jax.Array:
        keys = jax.random.split(key, 3)
        for index, stage in stages:
            images = stage(keys[index], images, values)
        return images

    return augment
