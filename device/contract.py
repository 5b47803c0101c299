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
# Extra context around a detected face box, as a fraction of its size. The detectors' boxes already
# follow FER2013's framing (forehead to chin; device/detect.py), so little is added: on the composited
# detection set's Training-face frames, the shipped default read best at 0.05 around the true box, Haar's
# and BlazeFace's boxes alike, and 9-13 points lower at 0.15, the old value (python -m convert crops
# device/models/default --split calib; docs/RESULTS.md, "Field benchmark"). Training never crops, so
# PREPROCESSING_VERSION stays: no model's input changes, only where the loop cuts the face.
FACE_MARGIN = 0.05


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
    """Any face crop (gray or colour, any size) -> (48, 48) uint8: the model's input.

    ``resize``: area averaging when shrinking, bilinear when growing, bit-identical across CPUs.
    It replaced a plain cv2 INTER_AREA / INTER_LINEAR: pixels move by less than one level on average,
    and the shipped model's accuracy on PublicTest faces shown at 24-300 px moved by -0.4 to +0.2
    points (scripts/docs/crop_accuracy.py, docs/AARCH64.md). Training never resizes (FER2013 is 48x48),
    so PREPROCESSING_VERSION stays 1 and models made before it need nothing new."""
    gray = to_gray(np.asarray(face))
    if gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {gray.dtype}")
    return resize(gray, (INPUT_SIZE, INPUT_SIZE))


def resize(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A 2-D uint8 image resized to ``size`` (width, height), with the same pixels on x86 and ARM.

    cv2.resize's INTER_AREA at fractional scales and its INTER_LINEAR round differently on x86
    and aarch64 (docs/AARCH64.md); INTER_AREA by whole factors and INTER_LINEAR_EXACT are integer
    arithmetic, bit-identical on both. So a shrink by a fractional r is a bilinear stretch to the
    next whole multiple k = ceil(r) of the target, then INTER_AREA by exactly k: the same box
    average over the same extent that INTER_AREA takes. Whole-factor shrinks (640x480 -> 128x96,
    640 -> 320 wide) are plain INTER_AREA as before; growing is INTER_LINEAR_EXACT. Used for the
    face crop below and for the detectors' input, so both see the same frames on every CPU.
    """
    h, w = gray.shape[:2]
    tw, th = size
    if (w, h) == (tw, th):
        return gray
    kx, ky = -(-w // tw), -(-h // th)  # ceil: 1 on an axis that grows or keeps its size
    if (w, h) != (tw * kx, th * ky):
        gray = cv2.resize(gray, (tw * kx, th * ky), interpolation=cv2.INTER_LINEAR_EXACT)
    if kx > 1 or ky > 1:
        gray = cv2.resize(gray, (tw, th), interpolation=cv2.INTER_AREA)
    return gray


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
