"""The labelled face-detection set the detectors are scored on (scripts/docs/bench_detectors.py, which
writes docs/DETECTORS.md): composited FER2013 faces on real faceless backgrounds, with true boxes.

Not used by the camera loop; numpy and OpenCV only, like the rest of device/, so its tests run in the
device venvs. ``scripts/docs/make_detection_set.py`` writes a set into DEFAULT_OUT (a cache, never in
git): real background photos (the ones scikit-image ships, read out of its wheel, none with a human
face) cut to 640x480 gray, with 1-3 FER2013 faces pasted in at 24-200 px, random positions, small
rotations, per-face contrast/brightness, and a whole-frame lighting condition: ``normal``, ``bright``
(washed out), ``dim``, or ``dark_ir`` (a dark, low-contrast, noisy gray frame like an IR driver camera
at night). Box convention: a square around the face in FER2013's own framing, i.e. the region a 48x48
FER2013 image covers; for a pasted face that is the pasted square itself.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from device.fetch import download_wheel
from device.paths import REPO

DEFAULT_OUT = REPO / ".cache" / "detection_set"
SKIMAGE = "scikit-image==0.26.0"
# scikit-image's bundled photos with no human face (left out: astronaut and camera have a face,
# chelsea is a cat's face, coins carry profile heads; chessboard, logo, phantom are not photos).
BACKGROUNDS = ("brick", "cell", "clock_motion", "coffee", "grass", "gravel", "hubble_deep_field", "ihc",
               "moon", "motorcycle_left", "page", "retina", "rocket", "text")
FRAME_SIZE = (640, 480)            # width, height: a usual camera frame
FACE_SIDE = (24, 200)              # pasted face square, pixels, log-uniform
MAX_ANGLE = 12.0                   # degrees, uniform +-
FACES_PER_FRAME = ((1, 0.5), (2, 0.3), (3, 0.2))
CONDITIONS = (("normal", 0.40), ("bright", 0.15), ("dim", 0.20), ("dark_ir", 0.25))
PARAMS_VERSION = 2                 # bump when the generator changes what it draws


def skimage_backgrounds(cache: Path) -> dict[str, np.ndarray]:
    """The BACKGROUNDS photos as gray uint8, read from the scikit-image wheel (never installed)."""
    wheel = download_wheel(SKIMAGE, cache)
    out = {}
    with zipfile.ZipFile(wheel) as z:
        names = {Path(n).stem: n for n in z.namelist() if n.startswith("skimage/data/")}
        for name in BACKGROUNDS:
            img = cv2.imdecode(np.frombuffer(z.read(names[name]), np.uint8), cv2.IMREAD_GRAYSCALE)
            out[name] = img
    return out


def background_frame(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    """A random crop of ``bg`` at a random zoom, resized to FRAME_SIZE, randomly mirrored."""
    W, H = FRAME_SIZE
    h, w = bg.shape
    zoom = rng.uniform(0.6, 1.0)
    cw = min(w, int(round(min(w, h * W / H) * zoom)))
    ch = min(h, int(round(cw * H / W)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    frame = cv2.resize(bg[y0:y0 + ch, x0:x0 + cw], (W, H), interpolation=cv2.INTER_AREA if cw > W else cv2.INTER_LINEAR)
    return frame[:, ::-1].copy() if rng.random() < 0.5 else frame


def face_patch(face48: np.ndarray, side: int, angle: float, contrast: float, brightness: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """A FER face scaled to ``side``, rotated, with its own contrast/brightness -> (pixels float32, alpha)."""
    interp = cv2.INTER_CUBIC if side > 48 else cv2.INTER_AREA
    face = cv2.resize(face48, (side, side), interpolation=interp).astype(np.float32)
    face = np.clip((face - 128.0) * contrast + 128.0 + brightness, 0, 255)
    c = (side - 1) / 2.0
    yy, xx = np.mgrid[0:side, 0:side]
    # A soft-edged rounded square (superellipse, power 4): the whole FER framing stays (cheeks and
    # forehead included), and no hard square edge is left for a detector to latch on to.
    r = (np.abs((xx - c) / (side / 2.0)) ** 4 + np.abs((yy - c) / (side / 2.0)) ** 4) ** 0.25
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0).astype(np.float32)
    m = cv2.getRotationMatrix2D((c, c), angle, 1.0)
    face = cv2.warpAffine(face, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.warpAffine(alpha, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return face, alpha


def apply_condition(frame: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The whole frame's lighting: what the camera would deliver in that condition."""
    x = frame.astype(np.float32)
    if condition == "normal":
        x = (x - 128.0) * rng.uniform(0.85, 1.15) + 128.0 + rng.uniform(-15, 15)
    elif condition == "bright":
        x = (x - 128.0) * rng.uniform(0.55, 0.8) + 128.0 + rng.uniform(50, 80)
    elif condition == "dim":
        x = x * rng.uniform(0.35, 0.55) + rng.normal(0, 2.0, x.shape)
    elif condition == "dark_ir":  # IR camera at night: dark, flat, noisy, slightly soft
        x = cv2.GaussianBlur(x, (3, 3), 0.8)
        x = 8.0 + x * rng.uniform(0.15, 0.25) + rng.normal(0, rng.uniform(2.0, 4.0), x.shape)
    else:
        raise ValueError(f"unknown condition {condition!r}")
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def place(rng: np.random.Generator, side: int, taken: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """A top-left corner for a ``side`` square inside the frame, clear of the squares in ``taken``."""
    W, H = FRAME_SIZE
    for _ in range(50):
        x, y = int(rng.integers(0, W - side + 1)), int(rng.integers(0, H - side + 1))
        gap = 0.1 * side
        if all(x + side + gap <= tx or tx + ts + gap <= x or y + side + gap <= ty or ty + ts + gap <= y
               for tx, ty, ts in taken):
            return x, y
    return None


def choose(rng: np.random.Generator, pairs) -> object:
    values, weights = zip(*pairs)
    return values[int(rng.choice(len(values), p=np.asarray(weights) / sum(weights)))]


def composite_frame(rng: np.random.Generator, bg: np.ndarray, faces: np.ndarray, labels: np.ndarray,
                    pool: np.ndarray, n_faces: int, condition: str) -> tuple[np.ndarray, list[dict]]:
    """One frame: ``n_faces`` faces drawn from ``pool`` (indices into faces) pasted on ``bg``, then lit."""
    frame = background_frame(rng, bg).astype(np.float32)
    taken, records = [], []
    for _ in range(n_faces):
        side = int(round(np.exp(rng.uniform(np.log(FACE_SIDE[0]), np.log(FACE_SIDE[1])))))
        spot = place(rng, side, taken)
        if spot is None:
            continue
        x, y = spot
        i = int(rng.choice(pool))
        angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
        patch, alpha = face_patch(faces[i], side, angle, rng.uniform(0.8, 1.2), rng.uniform(-20, 20))
        region = frame[y:y + side, x:x + side]
        region[...] = alpha * patch + (1.0 - alpha) * region
        taken.append((x, y, side))
        records.append({"box": [x, y, side, side], "label": int(labels[i]), "fer_index": i, "size": side,
                        "angle": round(angle, 2)})
    frame = apply_condition(frame, condition, rng)
    for r in records:
        x, y, s, _ = r["box"]
        r["brightness"] = round(float(frame[y:y + s, x:x + s].mean()), 1)
        r["contrast"] = round(float(frame[y:y + s, x:x + s].std()), 1)
    return frame, records


def make_split(name: str, n: int, rng: np.random.Generator, backgrounds: dict[str, np.ndarray],
               faces: np.ndarray, labels: np.ndarray, pool: np.ndarray | None, out: Path) -> list[dict]:
    """``n`` frames of one split written as PNG -> their label records."""
    frames = []
    bg_names = sorted(backgrounds)
    for k in range(n):
        bg = bg_names[int(rng.integers(len(bg_names)))]
        condition = choose(rng, CONDITIONS)
        n_faces = choose(rng, FACES_PER_FRAME) if pool is not None else 0
        gray, recs = composite_frame(rng, backgrounds[bg], faces, labels,
                                     pool if pool is not None else np.zeros(0, int), n_faces, condition)
        file = f"frames/{name}_{k:04d}.png"
        cv2.imwrite(str(out / file), gray)
        frames.append({"file": file, "split": name, "background": bg, "condition": condition, "faces": recs})
    return frames


def load_set(out: Path) -> dict:
    """labels.json of a generated set (raises FileNotFoundError naming the script that makes it when absent)."""
    path = Path(out) / "labels.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run python scripts/docs/make_detection_set.py --out {out}")
    return json.loads(path.read_text())


def read_clip(path: Path) -> list[np.ndarray]:
    """Every frame of a clip, in colour (BGR)."""
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out
