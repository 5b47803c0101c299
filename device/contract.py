"""The one definition of what a ferlite model sees.

A model input is a 48x48 single-channel face, uint8 pixel values 0..255, label
order as in FER2013. Everything else (rescaling, normalisation) lives inside
the model as layers, so training, conversion and the Pi all feed the same
thing: ``face_to_input(crop)`` for a camera crop, or the FER2013 pixels as-is.
"""
from __future__ import annotations

import cv2
import numpy as np

# FER2013's label order (the ``emotion`` column 0..6). Never alphabetical.
LABELS: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
NUM_CLASSES = len(LABELS)
INPUT_SIZE = 48
INPUT_SHAPE: tuple[int, int, int] = (INPUT_SIZE, INPUT_SIZE, 1)
# Pixel range fed to the model: raw uint8 values; the model rescales inside.
INPUT_RANGE: tuple[float, float] = (0.0, 255.0)
# Bump when anything in this file changes what the model sees; metadata carries it
# so a model trained on an older contract is refused instead of silently misread.
PREPROCESSING_VERSION = 1
# Extra context around a detected face box, as a fraction of its size. FER2013
# faces are loosely cropped (forehead to chin, some background), Haar boxes are tight.
FACE_MARGIN = 0.15


def to_gray(frame: np.ndarray) -> np.ndarray:
    """BGR, BGRA or gray frame -> 2-D uint8 gray (no copy when already gray)."""
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 1:
        return frame[:, :, 0]
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"expected a gray, BGR or BGRA image, got shape {frame.shape}")


def expand_box(box, frame_shape, margin: float = FACE_MARGIN) -> tuple[int, int, int, int]:
    """(x, y, w, h) grown by ``margin`` on each side, made square, clipped to the frame."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    H, W = frame_shape[:2]
    x0 = int(round(max(0.0, cx - side / 2.0)))
    y0 = int(round(max(0.0, cy - side / 2.0)))
    x1 = int(round(min(float(W), cx + side / 2.0)))
    y1 = int(round(min(float(H), cy + side / 2.0)))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def face_to_input(face: np.ndarray) -> np.ndarray:
    """Any face crop (gray or colour, any size) -> (48, 48) uint8: the model's input."""
    gray = to_gray(np.asarray(face))
    if gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {gray.dtype}")
    if gray.shape == (INPUT_SIZE, INPUT_SIZE):
        return gray
    # INTER_AREA when shrinking (what a camera crop almost always needs), linear when growing.
    interp = cv2.INTER_AREA if min(gray.shape) >= INPUT_SIZE else cv2.INTER_LINEAR
    return cv2.resize(gray, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)


def crop_face(gray: np.ndarray, box, margin: float = FACE_MARGIN) -> np.ndarray:
    """Cut the face at ``box`` (x, y, w, h) with a margin out of a gray frame -> (48, 48) uint8."""
    x, y, w, h = expand_box(box, gray.shape, margin)
    return face_to_input(gray[y:y + h, x:x + w])


def as_batch(faces: np.ndarray) -> np.ndarray:
    """(N, 48, 48) or (N, 48, 48, 1) uint8 -> (N, 48, 48, 1) float32 in 0..255: the float model's input."""
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[..., None]
    if faces.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"expected faces of shape (N, {INPUT_SIZE}, {INPUT_SIZE}), got {faces.shape}")
    return faces.astype(np.float32, copy=False)
