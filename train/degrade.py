"""Camera degradation as a training-time layer: what a cabin at night, a cheap lens and a small face do.

The "field" augmentation (train/augment.py) ends with this layer. Each face is, with probability ``rate``,
put through a random camera: optics (a Gaussian or motion blur, a small face scaled up, or a looser crop), then lighting
(gamma, a gain that darkens or a lift that washes out, with less contrast), then sensor noise, then
rounding to whole 0..255 levels. The rest pass through untouched, so the clean face stays in the mix.

Why in the model and with Keras ops: it runs on every backend, is identity at inference (the exported
file takes the plain face, as ever), and the field benchmark (convert/field.py) degrades faces with its
own OpenCV code, so the benchmark is not the training distribution read back.
"""
from __future__ import annotations

import math

import keras
from keras import ops

SMALL_FACES = (24, 16)   # sides a small face is shrunk to before it is scaled back up to 48
BLUR_SIGMAS = (1.0, 1.8)
MOTION_LENGTH = 7        # pixels of a horizontal, vertical or diagonal smear
LOOSE_SIDES = (38, 32)   # the face shrunk to this side inside the 48x48, context mirrored around it: a crop
                         # with a margin around the box (about 13% and 25% on each side)
MAX_NOISE = 10.0         # standard deviation of the sensor noise, in 0..255 levels
MIN_GAIN = 0.15          # darkest exposure (about a seventh of the light)


def _gaussian_kernel(sigma: float) -> list[float]:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    weights = [math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-radius, radius + 1)]
    return [w / sum(weights) for w in weights]


def _separable(x, row: list[float], col: list[float]):
    """Convolve (N, H, W, 1) with the outer product of ``col`` and ``row``, edges mirrored."""
    ry, rx = len(col) // 2, len(row) // 2
    x = ops.pad(x, ((0, 0), (ry, ry), (rx, rx), (0, 0)), mode="symmetric")
    x = ops.conv(x, ops.reshape(ops.convert_to_tensor(col, x.dtype), (len(col), 1, 1, 1)), padding="valid")
    return ops.conv(x, ops.reshape(ops.convert_to_tensor(row, x.dtype), (1, len(row), 1, 1)), padding="valid")


def _diagonal(x, anti: bool):
    """A diagonal smear MOTION_LENGTH pixels long (down-right, or down-left when ``anti``), edges mirrored."""
    n, r = MOTION_LENGTH, MOTION_LENGTH // 2
    kernel = [[1.0 / n if (j == n - 1 - i if anti else j == i) else 0.0 for j in range(n)] for i in range(n)]
    x = ops.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric")
    return ops.conv(x, ops.reshape(ops.convert_to_tensor(kernel, x.dtype), (n, n, 1, 1)), padding="valid")


@keras.saving.register_keras_serializable(package="ferlite")
class RandomDegrade(keras.layers.Layer):
    """Training only: (N, 48, 48, 1) raw 0..255 faces -> the same, a random share seen by a worse camera."""

    def __init__(self, rate: float = 0.6, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # pixel arithmetic stays float32 under mixed_bfloat16
        super().__init__(**kwargs)
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def optics(self, x):
        """The same faces through each lens: sharp, Gaussian blurs, motion smears, small faces scaled up,
        and looser crops (the face smaller in the frame)."""
        h, w = x.shape[1], x.shape[2]
        box = [1.0 / MOTION_LENGTH] * MOTION_LENGTH
        views = [x] + [_separable(x, k, k) for k in map(_gaussian_kernel, BLUR_SIGMAS)]
        views += [_separable(x, box, [1.0]), _separable(x, [1.0], box), _diagonal(x, False), _diagonal(x, True)]
        for side in SMALL_FACES:
            small = ops.image.resize(x, (side, side), interpolation="bilinear", antialias=True)
            views.append(ops.image.resize(small, (h, w), interpolation="bilinear"))
        for side in LOOSE_SIDES:
            lo, hi = (h - side) // 2, h - side - (h - side) // 2
            small = ops.image.resize(x, (side, side), interpolation="bilinear", antialias=True)
            views.append(ops.pad(small, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="symmetric"))
        return ops.stack(views, axis=0)  # (V, N, H, W, 1)

    def call(self, x, training=None):
        if not training or self.rate <= 0:
            return x
        x = ops.cast(x, "float32")
        n = ops.shape(x)[0]
        u = keras.random.uniform((9, n, 1, 1, 1), seed=self.seed_generator)
        views = self.optics(x)
        # half the degraded faces keep sharp optics; the others pick one lens evenly
        lens = ops.where(u[1] < 0.5, 0, 1 + ops.cast(u[2] * (views.shape[0] - 1), "int32"))
        pick = ops.moveaxis(ops.one_hot(ops.reshape(lens, (-1,)), views.shape[0]), 1, 0)
        y = ops.sum(views * ops.reshape(pick, (views.shape[0], -1, 1, 1, 1)), axis=0)
        # lighting: gamma, then a gain in [MIN_GAIN, 1.2] (log-uniform), then a lift that washes out
        gamma = ops.exp((u[3] - 0.5) * 0.8)
        y = 255.0 * ops.power(ops.clip(y / 255.0, 0.0, 1.0), gamma)
        gain = ops.exp(math.log(MIN_GAIN) + u[4] * (math.log(1.2) - math.log(MIN_GAIN)))
        lift = ops.where(u[5] < 0.3, u[6] * 255.0 * ops.maximum(1.0 - gain, 0.0), u[6] * 12.0)
        y = y * gain + lift
        # sensor noise on 60% of the degraded faces
        sigma = ops.where(u[7] < 0.6, u[8] * MAX_NOISE, 0.0)
        y = y + sigma * keras.random.normal(ops.shape(x), seed=self.seed_generator)
        y = ops.round(ops.clip(y, 0.0, 255.0))
        return ops.where(u[0] < self.rate, y, x)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
