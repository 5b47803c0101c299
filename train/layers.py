"""Custom layers. Keras 3 ops only, so they run on TF, JAX or torch and convert to TFLite."""
from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="ferlite")
class ScaledL2Normalize(keras.layers.Layer):
    """v / ||v||_2 * gamma + beta (paper eq. 4-6): features on the unit sphere, then a learnable affine.

    gamma and beta are per-channel, initialised to 1 and 0. ``epsilon`` bounds the squared norm
    from below so an all-zero vector (e.g. after ReLU) gives 0, not NaN.
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        dim = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(dim,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(dim,), initializer="zeros")

    def call(self, x):
        # This exact form (square, sum, max, rsqrt, mul) is what the TFLite converter fuses into its
        # builtin L2_NORMALIZATION op, which has an int8 kernel: the head stays integer end to end.
        inv_norm = ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), self.epsilon))
        return x * inv_norm * self.gamma + self.beta

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="ferlite")
class FaceStandardize(keras.layers.Layer):
    """Per-face contrast normalisation: each face's pixels moved to one mean and spread,
    ``mean + spread * (x - mean(x)) / std(x)``.

    Why: a dark cabin, an IR camera's flat image and a washed-out kiosk face change a face's brightness
    and contrast, not its expression; after this layer they reach the network as the same face. The
    targets are FER2013's average per-face mean and spread on the 0..1 scale (0.51 and 0.21 over 5,000
    training faces), so a clean face reaches the first convolution about as it did without the layer and
    a trained network can be fine-tuned with it (``vgg_cnn_norm`` from a ``vgg_cnn`` run). ``epsilon``
    floors the variance (a std of 0.003 of the range, under one grey level) so a flat face gives a flat
    face, not NaN. Computed in float32 under a mixed policy: a bf16 sum of 2,304 pixels is too coarse.
    """

    def __init__(self, mean: float = 0.5, spread: float = 0.21, epsilon: float = 1e-5, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean, self.spread, self.epsilon = mean, spread, epsilon

    def call(self, x):
        centred = x - ops.mean(x, axis=(1, 2, 3), keepdims=True)
        variance = ops.mean(ops.square(centred), axis=(1, 2, 3), keepdims=True)
        return self.mean + self.spread * centred * ops.rsqrt(variance + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "spread": self.spread, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="ferlite")
class MirrorFaces(keras.layers.Layer):
    """Left-right mirror of NHWC faces (a fixed op, not augmentation: it runs in inference too).

    Used by ``models.with_flip_average``; converts to TFLite's REVERSE_V2, which has an int8 kernel.
    """

    def call(self, x):
        return ops.flip(x, axis=2)


@keras.saving.register_keras_serializable(package="ferlite")
class RandomShift(keras.layers.Layer):
    """Training only: each face moved by whole pixels, up to ``pad`` each way, zeros filling in; i.e. a
    random window of the face zero-padded by ``pad`` on every side (the "crop" augmentation).

    Why not ``keras.layers.RandomTranslation``: it declares itself unfit for XLA, so a model holding it
    trains op by op on JAX (702 ms per batch of 64 on an H200, 2026-12-04). Here the window is cut by
    two one-hot matrix products per face, which XLA compiles; the TF backend on a CPU is as fast.
    """

    def __init__(self, pad: int = 4, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.pad, self.seed = int(pad), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.pad <= 0:
            return x
        p, n, h, w = self.pad, ops.shape(x)[0], x.shape[1], x.shape[2]
        padded = ops.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        start = keras.random.randint((2, n, 1), 0, 2 * p + 1, seed=self.seed_generator)
        rows = ops.one_hot(start[0] + ops.arange(h)[None, :], h + 2 * p, dtype=x.dtype)  # (n, h, h + 2p)
        cols = ops.one_hot(start[1] + ops.arange(w)[None, :], w + 2 * p, dtype=x.dtype)  # (n, w, w + 2p)
        return ops.einsum("nip,npqc,njq->nijc", rows, padded, cols)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad, "seed": self.seed}


@keras.saving.register_keras_serializable(package="ferlite")
class RandomErasing(keras.layers.Layer):
    """Training only: with probability ``rate``, one random rectangle of each face becomes one random gray.

    Zhong et al. 2017 ("Random Erasing Data Augmentation"): 2-25% of the area, aspect 0.3-3.3. It makes
    the net read the whole face instead of one cue (a mouth corner, an eyebrow), which is also what a
    hand, glasses or a steering wheel hide on a real camera. Vectorised: one mask per batch, no loop.
    """

    def __init__(self, rate: float = 0.5, area=(0.02, 0.25), aspect=(0.3, 3.3), seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.area, self.aspect, self.seed = float(rate), tuple(area), tuple(aspect), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.rate <= 0:
            return x
        n, h, w = ops.shape(x)[0], x.shape[1], x.shape[2]
        u = keras.random.uniform((6, n, 1, 1, 1), seed=self.seed_generator)
        area = (self.area[0] + u[0] * (self.area[1] - self.area[0])) * h * w
        log_lo, log_hi = math.log(self.aspect[0]), math.log(self.aspect[1])
        aspect = ops.exp(log_lo + u[1] * (log_hi - log_lo))
        eh = ops.minimum(ops.sqrt(area * aspect), h)
        ew = ops.minimum(ops.sqrt(area / aspect), w)
        y0 = u[2] * (h - eh)
        x0 = u[3] * (w - ew)
        rows = ops.reshape(ops.arange(h, dtype="float32"), (1, h, 1, 1))
        cols = ops.reshape(ops.arange(w, dtype="float32"), (1, 1, w, 1))
        inside = (rows >= y0) & (rows < y0 + eh) & (cols >= x0) & (cols < x0 + ew) & (u[4] < self.rate)
        return ops.where(inside, u[5] * 255.0, x)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "area": self.area, "aspect": self.aspect,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="ferlite")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against softmax probabilities, with label smoothing.

    Keras's sparse loss has no smoothing and the dense one wants one-hot labels; this keeps the
    data pipeline (and sample weights) on integer labels. ``smoothing`` moves that much of the
    target mass evenly onto all classes: the net stops chasing FER2013's noisy labels to 100%.
    """

    def __init__(self, smoothing: float = 0.0, name="sparse_smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        k = y_pred.shape[-1]
        target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), k)
        target = target * (1.0 - self.smoothing) + self.smoothing / k
        return -ops.sum(target * ops.log(ops.clip(y_pred, 1e-7, 1.0)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}
