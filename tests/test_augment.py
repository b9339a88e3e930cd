"""Augmentations: shapes, determinism per key, per-example draws, jitted and not."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lenet_jax import prng
from lenet_jax.training import augment

SHAPE = (8, 12, 10, 3)  # H != W catches a swapped axis


def _images(seed: int = 0, shape=SHAPE) -> jax.Array:
    return jax.random.uniform(prng.key(seed), shape)


def _identical_batch(batch: int = 16) -> jax.Array:
    """One image repeated, so any difference between examples comes from the draws."""
    return jnp.broadcast_to(_images(shape=SHAPE[1:]), (batch, *SHAPE[1:]))


def _distinct_examples(out: jax.Array) -> int:
    return len({np.asarray(example).tobytes() for example in out})


class FlipTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_flip_twice_is_identity(self):
        x = _images()
        flip = self.variant(augment.flip)
        chex.assert_trees_all_equal(flip(flip(x)), x)
        np.testing.assert_array_equal(flip(x)[:, :, 0], x[:, :, -1])

    @chex.variants(with_jit=True, without_jit=True)
    def test_random_flip_per_example(self):
        x = _identical_batch()
        out = self.variant(augment.random_flip)(prng.key(0), x)
        chex.assert_trees_all_equal_shapes_and_dtypes(out, x)
        flipped = [bool(jnp.array_equal(o, augment.flip(x)[0])) for o in out]
        for was_flipped, o in zip(flipped, out, strict=True):
            assert was_flipped or jnp.array_equal(o, x[0])
        assert 0 < sum(flipped) < len(flipped)

    @chex.variants(with_jit=True, without_jit=True)
    def test_random_flip_same_key_same_output(self):
        x = _images()
        random_flip = self.variant(augment.random_flip)
        chex.assert_trees_all_equal(
            random_flip(prng.key(3), x), random_flip(prng.key(3), x)
        )
        assert not jnp.array_equal(
            random_flip(prng.key(3), x), random_flip(prng.key(4), x)
        )


def test_mirror_half_mirrors_a_fixed_half_chosen_by_the_seed():
    images = np.random.default_rng(0).integers(0, 256, (400, 6, 5, 3), dtype=np.uint8)
    original = images.copy()
    out = augment.mirror_half(images, seed=0)
    np.testing.assert_array_equal(images, original)  # a copy: the dataset is not touched
    mirrored = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images, strict=True)])
    kept = np.array([np.array_equal(o, i) for o, i in zip(out, images, strict=True)])
    assert np.all(mirrored ^ kept)  # each image is either mirrored or left as it was
    assert 160 < mirrored.sum() < 240
    np.testing.assert_array_equal(augment.mirror_half(images, seed=0), out)
    again = augment.mirror_half(images, seed=1)
    assert not np.array_equal(again, out)


class CropTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_keeps_shape_and_dtype(self):
        for dtype in (jnp.float32, jnp.bfloat16):
            x = _images().astype(dtype)
            out = self.variant(augment.random_crop)(prng.key(0), x)
            chex.assert_trees_all_equal_shapes_and_dtypes(out, x)

    @chex.variants(with_jit=True, without_jit=True)
    def test_zero_padding_is_identity(self):
        x = _images()
        crop = self.variant(lambda key, x: augment.random_crop(key, x, padding=0))
        chex.assert_trees_all_equal(crop(prng.key(0), x), x)

    @chex.variants(with_jit=True, without_jit=True)
    def test_same_key_same_output_different_key_different_output(self):
        x = _images()
        crop = self.variant(lambda key, x: augment.random_crop(key, x, padding=2))
        chex.assert_trees_all_equal(crop(prng.key(1), x), crop(prng.key(1), x))
        assert not jnp.array_equal(crop(prng.key(1), x), crop(prng.key(2), x))

    @chex.variants(with_jit=True, without_jit=True)
    def test_examples_get_different_crops(self):
        out = self.variant(augment.random_crop)(prng.key(0), _identical_batch())
        assert _distinct_examples(out) > 4

    def test_crop_is_a_window_of_the_reflect_padded_image(self):
        x = _images(shape=(1, 6, 5, 2))
        padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
        windows = [
            padded[0, top : top + 6, left : left + 5] for top in range(5) for left in range(5)
        ]
        for seed in range(5):
            out = np.asarray(augment.random_crop(prng.key(seed), x, padding=2))[0]
            assert any(np.array_equal(out, window) for window in windows)

    def test_every_offset_of_the_padded_image_is_drawn(self):
        """2 * padding + 1 offsets per axis, each reachable: 25 windows for padding 2."""
        x = jnp.arange(6 * 5, dtype=jnp.float32).reshape(1, 6, 5, 1)
        padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
        windows = {(t, le): padded[0, t : t + 6, le : le + 5] for t in range(5) for le in range(5)}
        crops = np.asarray(augment.random_crop(prng.key(0), jnp.repeat(x, 400, 0), 2))
        seen = {key for crop in crops for key, w in windows.items() if np.array_equal(crop, w)}
        assert seen == set(windows)

    def test_padding_too_large_is_rejected(self):
        with pytest.raises(ValueError, match="padding"):
            augment.random_crop(prng.key(0), _images(), padding=10)


class CutoutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_zeroes_at_most_one_square_per_example(self):
        size = 4
        x = jnp.ones((64, 12, 10, 3))
        out = self.variant(lambda key, x: augment.cutout(key, x, size=size))(prng.key(0), x)
        chex.assert_trees_all_equal_shapes_and_dtypes(out, x)
        zeros = np.asarray((out == 0).all(axis=-1).sum(axis=(1, 2)))
        assert ((zeros > 0) & (zeros <= size * size)).all()
        assert (zeros == size * size).any()  # squares fully inside keep their whole area
        assert (zeros < size * size).any()  # and ones at an edge are clipped
        assert ((out == 0) | (out == 1)).all()

    @chex.variants(with_jit=True, without_jit=True)
    def test_same_key_same_output_and_examples_differ(self):
        x = jnp.ones((16, 12, 10, 3))
        cut = self.variant(lambda key, x: augment.cutout(key, x, size=3))
        chex.assert_trees_all_equal(cut(prng.key(5), x), cut(prng.key(5), x))
        assert not jnp.array_equal(cut(prng.key(5), x), cut(prng.key(6), x))
        assert _distinct_examples(cut(prng.key(5), x)) > 4

    def test_size_zero_is_identity(self):
        x = _images()
        chex.assert_trees_all_equal(augment.cutout(prng.key(0), x, size=0), x)


class MakeAugmentTest(chex.TestCase):
    def test_nothing_enabled_returns_none(self):
        assert augment.make_augment() is None
        assert augment.make_augment(crop_padding=0, flip=False, cutout_size=0) is None

    def test_negative_sizes_are_rejected(self):
        with pytest.raises(ValueError):
            augment.make_augment(crop_padding=-1)

    @chex.variants(with_jit=True, without_jit=True)
    def test_all_enabled(self):
        fn = self.variant(augment.make_augment(crop_padding=2, flip=True, cutout_size=3))
        x = _identical_batch()
        out = fn(prng.key(0), x)
        chex.assert_trees_all_equal_shapes_and_dtypes(out, x)
        chex.assert_trees_all_equal(out, fn(prng.key(0), x))
        assert not jnp.array_equal(out, fn(prng.key(1), x))
        assert _distinct_examples(out) > 4

    def test_stages_use_independent_fixed_subkeys(self):
        # Adding cutout must not change which crops and flips are drawn.
        x = _images()
        key = prng.key(7)
        crop_flip = augment.make_augment(crop_padding=2, flip=True)(key, x)
        with_cutout = augment.make_augment(crop_padding=2, flip=True, cutout_size=3)(key, x)
        kept = with_cutout != 0
        np.testing.assert_array_equal(np.asarray(with_cutout)[kept], np.asarray(crop_flip)[kept])
        flip_only = augment.make_augment(flip=True)(key, x)
        assert not jnp.array_equal(flip_only, augment.flip(x))
        # Alternating flips draw no coin: the step and mirror_half make them.
        assert augment.make_augment(flip=True, flip_alternating=True) is None
        assert not jnp.array_equal(flip_only, x)


def test_translate_shifts_content_and_reflects_the_edge():
    x = jnp.arange(5.0).reshape(1, 1, 5, 1) * jnp.ones((1, 5, 1, 1))  # columns 0..4
    right = augment.translate(x, 0, 1)  # content moves one pixel right
    np.testing.assert_array_equal(right[0, 0, :, 0], [1.0, 0.0, 1.0, 2.0, 3.0])
    down = augment.translate(jnp.swapaxes(x, 1, 2), 1, 0)
    np.testing.assert_array_equal(down[0, :, 0, 0], [1.0, 0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(augment.translate(x, 0, 0), x)


def test_tta_views_weigh_to_one_and_are_the_documented_views():
    x = _images()
    for mode in augment.TTA:
        assert sum(w for w, _ in augment.tta_views(x, mode)) == pytest.approx(1.0)
    (_, a), (_, b) = augment.tta_views(x, "flip")
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, augment.flip(x))
    views = augment.tta_views(x, "flip_translate")
    assert [w for w, _ in views] == [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    np.testing.assert_array_equal(views[4][1], augment.translate(x, -1, -1))
    np.testing.assert_array_equal(views[5][1], augment.flip(augment.translate(x, -1, -1)))
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        augment.tta_views(x, "rotate")
