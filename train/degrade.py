"""Camera degradation as a training-time layer: what a cabin at night, a cheap lens and a small face do.

The "field" augmentation (train/augment.py) ends with this layer. Each face is, with probability ``rate``,
put through a random camera: optics (a Gaussian or motion blur, a small face scaled up, or a looser crop), then lighting
(gamma, a gain that darkens or a lift that washes out, with less contrast), then sensor noise, then
rounding to whole 0..255 levels, then (``jpeg`` > 0, the "field_jpeg" kind) a share of them stored as a
low-quality JPEG. The rest pass through untouched, so the clean face stays in the mix.

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
JPEG_QUALITIES = (10, 60)  # the JPEG stage's quality, uniform in this range (libjpeg's 1..100 scale)
# JPEG's luminance quantisation table at quality 50 (ITU-T T.81, Annex K), which libjpeg scales by quality
JPEG_LUMA_Q50 = (
    (16, 11, 10, 16, 24, 40, 51, 61), (12, 12, 14, 19, 26, 58, 60, 55), (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62), (18, 22, 37, 56, 68, 109, 103, 77), (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101), (72, 92, 95, 98, 112, 100, 103, 99))


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


def _dct_matrix() -> list[list[float]]:
    """The orthonormal 8-point DCT-II: coefficients = D @ block @ D.T, and back with D.T @ coefficients @ D."""
    return [[math.sqrt((1 if k == 0 else 2) / 8) * math.cos((2 * n + 1) * k * math.pi / 16) for n in range(8)]
            for k in range(8)]


def jpeg_round_trip(x, quality):
    """(N, H, W, 1) 0..255 faces (H, W multiples of 8) -> the same stored as baseline grayscale JPEG at
    ``quality`` ((N,) floats, 1..100): 8x8 blocks, DCT, libjpeg's scaled luminance table, rounding, back."""
    n, h, w = ops.shape(x)[0], x.shape[1], x.shape[2]
    blocks = ops.transpose(ops.reshape(x - 128.0, (n, h // 8, 8, w // 8, 8)), (0, 1, 3, 2, 4))
    d = ops.convert_to_tensor(_dct_matrix(), "float32")
    coef = ops.einsum("ki,zbcij,lj->zbckl", d, blocks, d)
    q = ops.reshape(ops.cast(quality, "float32"), (-1, 1, 1, 1, 1))
    scale = ops.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)  # libjpeg's jpeg_quality_scaling
    table = ops.clip(ops.floor((ops.convert_to_tensor(JPEG_LUMA_Q50, "float32") * scale + 50.0) / 100.0), 1, 255)
    coef = ops.round(coef / table) * table
    blocks = ops.einsum("ki,zbckl,lj->zbcij", d, coef, d)
    y = ops.reshape(ops.transpose(blocks, (0, 1, 3, 2, 4)), (n, h, w, 1)) + 128.0
    return ops.round(ops.clip(y, 0.0, 255.0))


@keras.saving.register_keras_serializable(package="ferlite")
class RandomDegrade(keras.layers.Layer):
    """Training only: (N, 48, 48, 1) raw 0..255 faces -> the same, a random share seen by a worse camera."""

    def __init__(self, rate: float = 0.6, seed=None, jpeg: float = 0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")  # pixel arithmetic stays float32 under mixed_bfloat16
        super().__init__(**kwargs)
        # jpeg: share of the degraded faces also stored as a JPEG (0 keeps the "field" recipe of older runs)
        self.rate, self.seed, self.jpeg = float(rate), seed, float(jpeg)
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
        if self.jpeg > 0:
            if x.shape[1] % 8 or x.shape[2] % 8:
                raise ValueError(f"the JPEG stage needs sides that are multiples of 8, got {x.shape[1]}x{x.shape[2]}")
            v = keras.random.uniform((2, n), seed=self.seed_generator)
            quality = JPEG_QUALITIES[0] + v[0] * (JPEG_QUALITIES[1] - JPEG_QUALITIES[0])
            y = ops.where(ops.reshape(v[1] < self.jpeg, (-1, 1, 1, 1)), jpeg_round_trip(y, quality), y)
        return ops.where(u[0] < self.rate, y, x)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "jpeg": self.jpeg}
