"""Training-time augmentation as Keras layers (paper sec. 3: rotation, translation, crop/zoom, flip, padding).

Random layers are identity at inference, so the exported model takes the plain face.
"""
from __future__ import annotations

import keras
from keras import layers

from .layers import RandomErasing


def build_augment(enabled: bool = True, rotation_deg: float = 10.0, shift: float = 0.1, zoom: float = 0.1,
                  seed: int | None = None, erasing: float = 0.0) -> keras.Sequential:
    """(N, 48, 48, 1) raw pixels -> the same, randomly transformed when called with training=True.

    ``erasing``: probability of random erasing per face (0 = off, the paper's recipe).
    """
    if not enabled:
        return keras.Sequential([layers.Identity()], name="augment")
    steps = [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(rotation_deg / 360.0, fill_mode="constant", seed=seed),  # factor is in turns
        layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed),      # "pixel filling"
        layers.RandomZoom(zoom, zoom, fill_mode="constant", seed=seed),              # zoom in = random crop
    ]
    if erasing > 0:
        steps.append(RandomErasing(erasing, seed=seed, name="random_erasing"))
    return keras.Sequential(steps, name="augment")
