"""Flax NNX, as flax's examples are written since 2025: eager modules built with `rngs`."""

from flax import nnx


class NnxCNN(nnx.Module):
    def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, 8, kernel_size=(3, 3), rngs=rngs)
        self.norm = nnx.BatchNorm(8, momentum=0.9, rngs=rngs)
        self.dropout = nnx.Dropout(0.3, rngs=rngs)
        self.hidden = nnx.Linear(8 * 14 * 14, 32, rngs=rngs)
        self.out = nnx.Linear(32, num_classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.norm(self.conv(x)))
        x = nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = self.dropout(nnx.relu(self.hidden(x)))
        return self.out(x)
