"""Reading a TFDS split by index: whole into memory, or a batch at a time when it is too big.

`StreamedImages` stands in for a split's image array where the decoded split exceeds
`config.max_in_memory_mb`: it has the array's length, shape and dtype, and indexing it
with an index array reads and decodes just those examples. The batch code indexes images
the same way in either case, so the epoch order, each process's share of a batch and a
resume are the same whether a split is streamed or held.
"""

from collections.abc import Iterator

import numpy as np

READ_CHUNK = 1024  # examples per read when a whole split is read


class StreamedImages:
    """A split's images, read and decoded from `source` when indexed."""

    streamed = True

    def __init__(self, source, image_key: str, image_shape: tuple, rows: np.ndarray | None = None):
        self._source = source
        self._key = image_key
        self._image_shape = tuple(image_shape)
        self._rows = np.arange(len(source)) if rows is None else np.asarray(rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self._rows), *self._image_shape)

    dtype = np.dtype(np.uint8)
    ndim = 4

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index) -> np.ndarray:
        rows = self._rows[index]
        if np.ndim(rows) == 0:
            return self[np.asarray([index])][0]
        return read_images(self._source, self._key, rows, self._image_shape)

    def subset(self, rows: np.ndarray) -> "StreamedImages":
        """These images' `rows`, still streamed (the smoke runs' fixed random subset)."""
        return StreamedImages(self._source, self._key, self._image_shape, self._rows[rows])


def read_images(source, image_key: str, rows, image_shape: tuple) -> np.ndarray:
    """The decoded images of examples `rows`, as one uint8 (N, H, W, C) array."""
    out = np.empty((len(rows), *image_shape), np.uint8)
    for i, example in enumerate(source.__getitems__([int(r) for r in rows])):
        out[i] = np.asarray(example[image_key]).reshape(image_shape)
    return out


def read_chunks(source, keys: tuple[str, ...], chunk: int = READ_CHUNK) -> Iterator[dict]:
    """Features `keys` of the whole split, in order, as {key: array} per chunk of examples."""
    for start in range(0, len(source), chunk):
        examples = source.__getitems__(list(range(start, min(start + chunk, len(source)))))
        yield {key: np.stack([np.asarray(example[key]) for example in examples]) for key in keys}


class ChannelStats:
    """Per-channel mean and std on the [0, 1] scale, accumulated over uint8 NHWC chunks."""

    def __init__(self):
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, images: np.ndarray) -> None:
        pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        self.count += len(pixels)
        self.total = self.total + pixels.sum(0)
        self.squares = self.squares + (pixels**2).sum(0)

    def result(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std); a constant channel's std is 1, so normalising leaves it finite."""
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean**2, 0.0))
        return tuple(float(m) for m in mean), tuple(float(s) if s > 0 else 1.0 for s in std)


def is_streamed(images) -> bool:
    return getattr(images, "streamed", False)
