"""An image folder: `<data_dir>/<split>/<class>/<image>` (CIFAR-10 as JPEGs, or a user's
own photos); the class folders name the classes. Without `config.data_dir` there is no
folder to read, and TFDS provides the dataset."""

from lenet_jax.data import image_folder
from lenet_jax.data.registry import DatasetSpec

SOURCE = "image_folder"


def read(spec: DatasetSpec, data_dir: str):
    if not data_dir:
        return None
    arrays, class_names = image_folder.load_image_folder(data_dir)
    return arrays, class_names, data_dir
