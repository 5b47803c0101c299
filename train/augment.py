"""Training-time augmentation as Keras layers (paper sec. 3: rotation, translation, crop/zoom, flip, padding).

Random layers are identity at inference, so the exported model takes the plain face.
"""
from __future__ import annotations

import keras
from keras import layers

from .config import AUGMENTATIONS as KINDS
from .degrade import RandomDegrade
from .layers import RandomErasing, RandomShift


CROP_PAD = 4  # "crop": a random 48x48 window of the face zero-padded to 56x56
FIELD_ROTATION_DEG = 15.0  # "field": a head tilted in the frame, as the field benchmark's rotation condition
FIELD_DEGRADE_RATE = 0.6   # "field": share of faces seen through a worse camera (train/degrade.py)
FIELD_JPEG_SHARE = 0.5     # "field_jpeg": share of those also stored as a low-quality JPEG


def build_augment(enabled: bool | str = True, rotation_deg: float = 10.0, shift: float = 0.1, zoom: float = 0.1,
                  seed: int | None = None, erasing: float = 0.0) -> keras.Sequential:
    """(N, 48, 48, 1) raw pixels -> the same, randomly transformed when called with training=True.

    ``enabled``: False, or the kind: "paper" (True; sec. 3: flip, rotation, translation, zoom) or
    "crop" (flip and a whole-pixel shift of up to CROP_PAD, i.e. a random crop of the padded face:
    the light recipe of VGG-style FER nets, which converges in fewer epochs), or "field" (crop, a
    small in-plane rotation, then a random camera: blur, small face, dark or washed-out light, noise),
    or "field_jpeg" (field, and the camera's frames often stored as low-quality JPEG).
    ``erasing``: probability of random erasing per face (0 = off, the paper's recipe).
    """
    if not enabled:
        return keras.Sequential([layers.Identity()], name="augment")
    kind = "paper" if enabled is True else enabled
    if kind not in KINDS:
        raise ValueError(f"unknown augmentation {kind!r} (expected one of {', '.join(KINDS)})")
    steps = [layers.RandomFlip("horizontal", seed=seed)]
    field = kind in ("field", "field_jpeg")
    if kind == "crop" or field:
        steps.append(RandomShift(CROP_PAD, seed=seed, name="random_shift"))  # XLA-compatible, unlike RandomTranslation
    if field:
        steps.append(layers.RandomRotation(FIELD_ROTATION_DEG / 360.0, fill_mode="reflect", seed=seed))
    if kind == "paper":
        steps += [
            layers.RandomRotation(rotation_deg / 360.0, fill_mode="constant", seed=seed),  # factor is in turns
            layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed),      # "pixel filling"
            layers.RandomZoom(zoom, zoom, fill_mode="constant", seed=seed),              # zoom in = random crop
        ]
    if erasing > 0:
        steps.append(RandomErasing(erasing, seed=seed, name="random_erasing"))
    if field:  # after erasing: the camera sees the occluder too
        jpeg = FIELD_JPEG_SHARE if kind == "field_jpeg" else 0.0
        steps.append(RandomDegrade(FIELD_DEGRADE_RATE, seed=seed, jpeg=jpeg, name="random_degrade"))
    return keras.Sequential(steps, name="augment")
