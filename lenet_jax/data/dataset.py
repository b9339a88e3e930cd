"""`Dataset`: both splits of one dataset in memory, as the loaders return them."""

import dataclasses

import numpy as np

from lenet_jax.data.streaming import is_streamed


@dataclasses.dataclass(frozen=True)
class Dataset:
    """The train split and the eval split (`test_*`) of one dataset; images are uint8
    NHWC, labels int32.

    Images stay uint8 on the host: the compiled step normalises them on the device with
    `mean` and `std`, so only bytes move. A split too large for memory has
    `streaming.StreamedImages` for its images, read by index like an array.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    source: str  # where the arrays came from, for the log

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])

    def take(self, num_train: int = 0, num_test: int = 0) -> "Dataset":
        """A fixed random subset of each split (0 = all of it), for smoke runs.

        Random rather than the first examples: image folders are sorted by class.
        """

        def keep(labels, n):
            if not n or n >= len(labels):
                return None  # all of it, uncopied
            return np.sort(np.random.default_rng(0).permutation(len(labels))[:n])

        return self._rows(keep(self.train_labels, num_train), keep(self.test_labels, num_test))

    def select_classes(self, classes: tuple[int, ...]) -> "Dataset":
        """Only the examples of `classes`, relabelled 0..k-1 in the order given (for
        transfer experiments: pretrain on some classes, fine-tune on the others)."""
        relabel = np.full(self.num_classes, -1, np.int32)
        relabel[np.asarray(classes, np.int64)] = np.arange(len(classes), dtype=np.int32)
        picked = self._rows(
            np.flatnonzero(relabel[self.train_labels] >= 0),
            np.flatnonzero(relabel[self.test_labels] >= 0),
        )
        return dataclasses.replace(
            picked,
            train_labels=relabel[picked.train_labels],
            test_labels=relabel[picked.test_labels],
            class_names=tuple(self.class_names[c] for c in classes),
        )

    def _rows(self, train_rows: np.ndarray | None, test_rows: np.ndarray | None) -> "Dataset":
        """The examples `train_rows` and `test_rows` of each split (None: all of it, as it
        is); a streamed split stays streamed."""

        def rows(images, labels, keep):
            if keep is None:
                return images, labels
            return (images.subset(keep) if is_streamed(images) else images[keep]), labels[keep]

        train_images, train_labels = rows(self.train_images, self.train_labels, train_rows)
        test_images, test_labels = rows(self.test_images, self.test_labels, test_rows)
        return dataclasses.replace(
            self,
            train_images=train_images,
            train_labels=train_labels,
            test_images=test_images,
            test_labels=test_labels,
        )

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"unknown split {name!r}; known: ['test', 'train']")
