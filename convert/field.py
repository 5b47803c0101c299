"""The field benchmark: the same faces as a camera in a car or a kiosk sees them.

A model's clean accuracy says little about a cabin at night, a face moving past a cheap lens, a
30-60 px face scaled up to 48, or the loop's own crop around a detector's box. Each condition
below degrades the evaluation faces at a moderate and a strong level, with OpenCV and numpy (not
the training layer train/degrade.py, so the benchmark is not the training distribution read back),
and every model is scored on them with the one shared ``device.metrics.evaluate``.

    scores = field_scores(predict, faces, labels)   # {"clean": .., "conditions": {cond: {level: ..}}}

Noise is seeded per condition, so two models see the very same degraded faces.
"""
from __future__ import annotations

from typing import Callable, Sequence

import cv2
import numpy as np

from device.contract import INPUT_SIZE, LABELS
from device.metrics import evaluate

LEVELS = ("moderate", "strong")
SEED = 0


def _pixels(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def low_light(faces, gain: float, rng=None):
    """Less light: every level scaled down, rounded to whole levels (the camera's 8 bits)."""
    return _pixels(faces.astype(np.float32) * gain)


def dark_noise(faces, gain: float, sigma: float, rng):
    """An IR cabin camera at night: dark, flat (little contrast) and grainy sensor noise."""
    x = faces.astype(np.float32) * gain + 10.0
    return _pixels(x + rng.normal(0.0, sigma, x.shape))


def washed_out(faces, contrast: float, rng=None):
    """Sun or a bright window behind the face: contrast squeezed towards white."""
    return _pixels(faces.astype(np.float32) * contrast + 230.0 * (1.0 - contrast))


def gaussian_blur(faces, sigma: float, rng=None):
    """Defocus: a Gaussian point spread of ``sigma`` pixels (at 48x48)."""
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101) for f in faces])


def motion_blur(faces, length: int, rng=None):
    """A face moving across the frame during the exposure: a diagonal smear ``length`` pixels long."""
    kernel = np.eye(length, dtype=np.float32) / length
    return np.stack([cv2.filter2D(f, -1, kernel, borderType=cv2.BORDER_REFLECT_101) for f in faces])


def small_face(faces, side: int, rng=None):
    """A face ``side`` pixels wide in the frame, scaled up to 48 as the loop does."""
    return np.stack([cv2.resize(cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA),
                                (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for f in faces])


def jpeg(faces, quality: int, rng=None):
    """A stream or a snapshot stored at low JPEG quality."""
    out = []
    for f in faces:
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    return np.stack(out)


def rotation(faces, degrees: float, rng):
    """A head tilted in the frame, left or right at random, by ``degrees``."""
    centre = ((INPUT_SIZE - 1) / 2.0, (INPUT_SIZE - 1) / 2.0)
    signs = rng.choice((-1.0, 1.0), len(faces))
    return np.stack([cv2.warpAffine(f, cv2.getRotationMatrix2D(centre, s * degrees, 1.0), (INPUT_SIZE, INPUT_SIZE),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
                     for f, s in zip(faces, signs)])


def loose_crop(faces, margin: float, rng=None):
    """The loop's crop around a detector box that is the face's own frame: ``margin`` of context on each
    side, as ``contract.crop_face`` adds with a margin, so the face fills less of the 48x48 (edges mirrored for context)."""
    pad = int(round(INPUT_SIZE * margin))
    return np.stack([cv2.resize(cv2.copyMakeBorder(f, pad, pad, pad, pad, cv2.BORDER_REFLECT_101),
                                (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA) for f in faces])


# condition -> (function, moderate parameters, strong parameters)
CONDITIONS: dict[str, tuple[Callable, dict, dict]] = {
    "low_light": (low_light, dict(gain=0.35), dict(gain=0.15)),
    "dark_noise": (dark_noise, dict(gain=0.3, sigma=4.0), dict(gain=0.15, sigma=8.0)),
    "washed_out": (washed_out, dict(contrast=0.5), dict(contrast=0.3)),
    "gaussian_blur": (gaussian_blur, dict(sigma=1.0), dict(sigma=2.0)),
    "motion_blur": (motion_blur, dict(length=5), dict(length=9)),
    "small_face": (small_face, dict(side=24), dict(side=16)),
    "jpeg": (jpeg, dict(quality=25), dict(quality=10)),
    "rotation": (rotation, dict(degrees=15.0), dict(degrees=30.0)),
    "loose_crop": (loose_crop, dict(margin=0.15), dict(margin=0.30)),
}


def degrade(faces: np.ndarray, condition: str, level: str, seed: int = SEED) -> np.ndarray:
    """(N, 48, 48) uint8 faces under ``condition`` at ``level`` (moderate | strong) -> the same shape."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r} (expected one of {', '.join(CONDITIONS)})")
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r} (expected one of {', '.join(LEVELS)})")
    fn, moderate, strong = CONDITIONS[condition]
    faces = np.asarray(faces, np.uint8).reshape(-1, INPUT_SIZE, INPUT_SIZE)
    rng = np.random.default_rng([seed, list(CONDITIONS).index(condition), LEVELS.index(level)])
    return fn(faces, rng=rng, **(moderate if level == "moderate" else strong))


def field_scores(predict: Callable[[np.ndarray], np.ndarray], faces: np.ndarray, labels: np.ndarray,
                 class_names: Sequence[str] = LABELS, conditions: Sequence[str] = tuple(CONDITIONS),
                 levels: Sequence[str] = LEVELS) -> dict:
    """Accuracy of ``predict`` on the clean faces and under each condition and level, and the worst drop
    (points) at each level. ``predict``: (N, 48, 48) uint8 -> (N, classes) probabilities."""
    faces = np.asarray(faces, np.uint8).reshape(-1, INPUT_SIZE, INPUT_SIZE)
    clean = evaluate(predict, faces, labels, class_names)["accuracy"]
    out = {"n": int(len(faces)), "clean": clean, "conditions": {}}
    for cond in conditions:
        out["conditions"][cond] = {lv: evaluate(predict, degrade(faces, cond, lv), labels, class_names)["accuracy"]
                                   for lv in levels}
    out["worst_drop_pp"] = {lv: round(100 * (clean - min(c[lv] for c in out["conditions"].values())), 2)
                            for lv in levels}
    return out
