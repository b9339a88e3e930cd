"""Writing images as a real TFDS dataset of a registered name, offline and without TensorFlow.

A `GeneratorBasedBuilder` made here carries a registered dataset's name, config, version
and features, and writes `array_record` files into a TFDS data dir. The registered builder
then reads them (`tfds.data_source(name, data_dir=...)`) as it would a copy it had
prepared itself. Images are yielded as PNG bytes: encoding numpy images is the one step
TFDS would need TensorFlow for. Used by `scripts/prepare_tfds.py` and by the tests.
"""

import io
import os

import numpy as np
from PIL import Image

from lenet_jax.data import tfds_source
from lenet_jax.errors import UserError


def write_tfds_dataset(
    name: str, splits: dict[str, tuple[np.ndarray, np.ndarray]], data_dir: str
) -> str:
    """Writes `splits` ({split: (uint8 NHWC images, int labels)}) as TFDS dataset `name`
    (`emnist/letters` names a config) in `data_dir`; returns the prepared folder.

    Features other than the image and the label (cifar10's `id`, cifar100's
    `coarse_label`) get a neutral value, since every example must carry every feature.
    """
    found = tfds_source.open_dataset(name, data_dir)
    config = found.builder.builder_config
    builder = _offline_builder(name, found, splits)(
        data_dir=data_dir,
        config=config.name if config is not None else None,
        file_format="array_record",
    )
    builder.download_and_prepare()
    return os.fspath(builder.data_dir)


def _offline_builder(name: str, found, splits: dict):
    """A builder class of the registered dataset's name, version, config and features that
    generates `splits` instead of downloading."""
    import tensorflow_datasets as tfds

    registered = found.builder
    features = registered.info.features
    config = registered.builder_config

    class OfflineBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = registered.info.version
        BUILDER_CONFIGS = [config] if config is not None else []

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                description=registered.info.description,
                features=features,
                supervised_keys=registered.info.supervised_keys,
                homepage=registered.info.homepage,
                citation=registered.info.citation,
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in splits}

        def _generate_examples(self, split):
            images, labels = splits[split]
            fillers = {
                key: _neutral(name, key, features[key])
                for key in features.keys()
                if key not in (found.image_key, found.label_key)
            }
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                example = dict(fillers)
                example[found.image_key] = _png(image)
                example[found.label_key] = int(label)
                yield i, example

    OfflineBuilder.name = registered.name
    return OfflineBuilder


def _png(image: np.ndarray) -> bytes:
    image = np.asarray(image, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def _neutral(name: str, key: str, feature):
    """A valid value for a feature the toolkit does not train on."""
    import tensorflow_datasets as tfds

    if isinstance(feature, tfds.features.Text):
        return ""
    if isinstance(feature, tfds.features.ClassLabel):
        return 0
    if isinstance(feature, tfds.features.Tensor):
        return np.zeros([d or 1 for d in feature.shape], feature.np_dtype)
    raise UserError(f"{name}: feature {key!r} ({type(feature).__name__}) cannot be written here")
