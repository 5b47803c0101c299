"""Custom layers. Keras 3 ops only, so they run on TF, JAX or torch and convert to TFLite."""
from __future__ import annotations

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
class MirrorFaces(keras.layers.Layer):
    """Left-right mirror of NHWC faces (a fixed op, not augmentation: it runs in inference too).

    Used by ``models.with_flip_average``; converts to TFLite's REVERSE_V2, which has an int8 kernel.
    """

    def call(self, x):
        return ops.flip(x, axis=2)
