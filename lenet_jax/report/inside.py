"""The numbers behind the look inside a trained network (`report.inspect` draws them):
each layer's output for an image, where the network looks (input-gradient saliency and
Grad-CAM), the classifier's features of a split and their 2-D projection.

Every function takes a `Snapshot` (`report.inference.load_run`, or what training returns)
and uint8 NHWC images as the dataset stores them; the model sees them normalised as in
evaluation, without test-time augmentation. A population is looked at one member at a
time (`member`).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lenet_jax import prng
from lenet_jax.errors import UserError
from lenet_jax.models import probe
from lenet_jax.report.inference import batched_outputs, predict_split
from lenet_jax.training import steps
from lenet_jax.training.results import Snapshot

FEATURE_BATCH = 500


def member(snapshot: Snapshot, which: str | int = "best") -> Snapshot:
    """One model of a population (`config.num_replicas`): replica `which`, or with "best"
    the one with the highest test accuracy; any other run as it is."""
    count = snapshot.run.num_replicas
    if count == 1:
        if which not in ("best", 0, "0"):
            raise UserError(f"--member={which}: the run trained one model; expected best or 0")
        return snapshot
    if which == "best":
        logits, labels = predict_split(snapshot, "test")
        index = int(np.argmax((logits.argmax(-1) == labels).mean(-1)))
    elif str(which).isdigit() and int(which) < count:
        index = int(which)
    else:
        raise UserError(f"--member={which}: expected best or 0 to {count - 1}")
    state = snapshot.state
    one = jax.tree.map(lambda x: x[index], (state.params, state.batch_stats))
    state = state.replace(params=one[0], batch_stats=one[1])
    config = snapshot.config.copy_and_resolve_references()
    config.num_replicas = 1
    run = dataclasses.replace(snapshot.run, config=config)
    return dataclasses.replace(snapshot, run=run, state=state)


def _normalise(snapshot: Snapshot, images) -> jax.Array:
    dataset = snapshot.dataset
    return steps.normalize(jnp.asarray(images), dataset.mean, dataset.std)


def _probe(snapshot: Snapshot, x, shift=None) -> probe.Probed:
    state = snapshot.state
    return probe.probe(snapshot.model, state.params, state.batch_stats, x, shift)


def look(snapshot: Snapshot, images: np.ndarray) -> probe.Probed:
    """The logits, every spatial layer's output and the classifier's features for `images`."""
    return jax.device_get(jax.jit(lambda x: _probe(snapshot, _normalise(snapshot, x)))(images))


def layer_named(probed: probe.Probed, name: str | None) -> probe.Layer:
    """The layer `name`, or the last spatial one (the last convolutional stage's output:
    after its pooling, where the model pools); one line naming the choices otherwise."""
    if name is None:
        if not probed.layers:
            raise UserError("no spatial layer (conv, pooling) could be found in the model")
        return probed.layers[-1]
    for layer in probed.layers:
        if layer.path == name:
            return layer
    paths = [layer.path for layer in probed.layers]
    raise UserError(f"--layer={name!r}: no such layer; the model's layers: {paths}")


def input_saliency(snapshot: Snapshot, images: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """d(class score)/d(pixel) for each image and its class in `classes` (the logit, before
    the softmax), on the float pixel values: the shape of `images`."""

    def score(pixels, cls):
        logits = _probe(snapshot, _normalise(snapshot, pixels[None])).logits
        return logits[0, cls]

    grad = jax.jit(jax.vmap(jax.grad(score)))
    return np.asarray(grad(jnp.asarray(images, jnp.float32), jnp.asarray(classes)))


def grad_cam(
    snapshot: Snapshot, images: np.ndarray, classes: np.ndarray, layer: str | None = None
) -> tuple[str, np.ndarray]:
    """(layer path, heat maps (N, h, w)) of Grad-CAM (Selvaraju et al., 2017) on `layer`
    (default: the last spatial layer, `layer_named`): each channel of its output weighted by the
    spatial mean of the class score's gradient with respect to it, summed, and clipped at
    zero; h and w are the layer's own."""
    x = _normalise(snapshot, images)
    chosen = layer_named(look(snapshot, images[:1]), layer)

    def cam(x1, cls):
        # One pass: the layer's output comes back beside the class score, whose gradient is
        # taken with respect to a zero shift of that output.
        def score(shift):
            probed = _probe(snapshot, x1[None], {chosen.path: shift})
            target = next(o for o in probed.layers if o.path == chosen.path).output
            return probed.logits[0, cls], target

        zero = jnp.zeros((1, *chosen.output.shape[1:]), chosen.output.dtype)
        grads, target = jax.grad(score, has_aux=True)(zero)
        weights = grads[0].mean(axis=(0, 1))
        return jax.nn.relu((target[0] * weights).sum(-1))

    return chosen.path, np.asarray(jax.jit(jax.vmap(cam))(x, jnp.asarray(classes)))


def layer_grid(snapshot: Snapshot, path: str, samples: int = 16) -> tuple[float, ...]:
    """Where layer `path`'s cells sit on the input, measured: (first row's centre, row
    stride, first column's centre, column stride), in pixels. Each row (column) of the
    layer is differentiated with respect to random inputs; the pixels any of them reach
    are what that row looks at (`_grid_of` fits the grid to their spans). A VALID
    convolution's layer covers only the middle of the image: stretched over all of it, a
    heat map would sit pixels off."""
    noise = jax.random.normal(prng.key(0), (samples, *snapshot.dataset.image_shape))

    def sums(x1, axis):
        layer = next(o for o in _probe(snapshot, x1[None]).layers if o.path == path)
        return layer.output[0].sum(axis=(1, 2) if axis == 0 else (0, 2))

    grid = []
    for axis in (0, 1):
        jacobian = jax.jit(jax.vmap(jax.jacrev(lambda x1, a=axis: sums(x1, a))))(noise)
        reached = np.abs(np.asarray(jacobian)).sum(axis=(0, 3 - axis, 4)) > 0  # (cells, pixels)
        grid += _grid_of(reached)
    return tuple(grid)


def _grid_of(reached: np.ndarray) -> list[float]:
    """(first cell's centre, stride) from which pixels each cell reaches (cells, pixels):
    each cell's span starts at a0 + stride * cell and ends at b0 + stride * cell, except
    where the image's edge cuts it (a padded border), so starts at pixel 0 and ends at the
    last pixel are left out of the fit; the centre is halfway. Cells reaching nothing (or
    too few measurable ones) leave the layer stretched over the whole image."""
    cells, size = np.flatnonzero(reached.any(-1)), reached.shape[1]
    first = reached[cells].argmax(-1)
    last = size - 1 - reached[cells, ::-1].argmax(-1)
    starts, ends = cells[first > 0], cells[last < size - 1]
    strides = [
        *(np.diff(first[first > 0]) / np.diff(starts)),
        *(np.diff(last[last < size - 1]) / np.diff(ends)),
    ]
    if not strides or not len(starts) or not len(ends):
        count = reached.shape[0]
        return [(size / count - 1) / 2, size / count]
    stride = float(np.median(strides))
    a0 = np.median(first[first > 0] - stride * starts)
    b0 = np.median(last[last < size - 1] - stride * ends)
    return [float((a0 + b0) / 2), stride]


def split_features(snapshot: Snapshot, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(features (examples, d), logits (examples, classes)) of every example of `split`:
    what the classifier reads, else (a model whose head is no submodule of flat input) the
    last spatial layer's spatial mean."""

    def run(state, x, labels, mask):
        x = _normalise(snapshot, x)
        probed = probe.probe(snapshot.model, state.params, state.batch_stats, x)
        features = probed.features
        if features is None:
            features = probed.layers[-1].output.mean(axis=(1, 2))
        return features.reshape(len(x), -1), probed.logits

    images, labels = snapshot.dataset.split(split)
    outputs = list(batched_outputs(snapshot, run, images, labels, batch_size=FEATURE_BATCH))
    features = np.concatenate([f[keep] for (f, _), keep in outputs])
    logits = np.concatenate([g[keep] for (_, g), keep in outputs])
    return features, logits


def pca(features: np.ndarray, dimensions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(points (examples, dimensions), each axis's share of the variance): the features
    centred and projected on their first principal axes."""
    centred = features - features.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    share = variance[:dimensions] / max(variance.sum(), 1e-12)
    return centred @ axes[:dimensions].T, share


def chosen_examples(labels: np.ndarray, probabilities: np.ndarray, mistakes: int = 4) -> list:
    """Test examples worth looking at: the first of each class, then the most confident
    mistakes; a list of indices."""
    first = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    predicted = probabilities.argmax(-1)
    wrong = np.flatnonzero(predicted != labels)
    confident = wrong[np.argsort(-probabilities[wrong].max(-1), kind="stable")][:mistakes]
    return first + [int(i) for i in confident if int(i) not in first]
