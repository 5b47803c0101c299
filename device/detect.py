"""Face detection behind a small interface, plus an IoU tracker that carries ids and smoothing.

A detector is anything with ``detect(gray) -> (N, 4) int32 boxes (x, y, w, h)`` in the
coordinates of the gray frame it was given. Two kinds, chosen by name (``make_detector``):
``HaarDetector`` (OpenCV's 2001 frontal-face cascade) and ``BlazeFaceDetector`` (MediaPipe's
BlazeFace, short or full range, through the same LiteRT interpreter as the classifier; its
decoding lives in ``device/blazeface.py``; the model files come from ``python device/run.py fetch-models``).
The tracker matches each detection round to the existing tracks by IoU, so a face keeps its
id and its smoothed probabilities between detections (``--detect-every``) and across frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol

import cv2
import numpy as np

from . import blazeface
from .contract import resize
from .errors import InputError
from .interpreter import interpreter_class
from .stderr import quiet_native_stderr
from .smoothing import ema

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
BLAZEFACE_DIR = Path(__file__).resolve().parent / "models" / "blazeface"
FETCH_HINT = "fetch it with: python device/run.py fetch-models"
DETECTORS = ("haar", *blazeface.SPECS)  # the --detector choices
# The loop's default: on the labelled set (docs/DETECTORS.md) BlazeFace short range matches Haar on
# real faces in normal light, still finds them in dark IR-like frames where Haar finds almost none,
# and costs a fraction of Haar's time; Haar stays a flag for small, far faces (< ~1/6 frame width).
DEFAULT_DETECTOR = "blazeface"
# Still images have no frame rate to keep and any framing (a portrait's face can be a sixth of its
# height): the full-range model, which finds every face in the shared photos.
STILLS_DETECTOR = "blazeface-full"


class DetectorError(InputError):
    """The detector cannot be built: a missing cascade file, OpenCV without CascadeClassifier, a missing or
    wrong BlazeFace model (the message names device/run.py fetch-models)."""


class Detector(Protocol):
    def detect(self, gray: np.ndarray) -> np.ndarray:
        """2-D uint8 frame -> (N, 4) int32 boxes (x, y, w, h) in that frame's pixels."""


def default_cascade_path() -> Path:
    data = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not data:
        raise DetectorError("this OpenCV has no cv2.data.haarcascades (OpenCV 5.x ships no Haar cascades): "
                            "pip install 'opencv-python-headless<5', or pass --cascade FILE.xml")
    return Path(data) / DEFAULT_CASCADE


class HaarDetector:
    """OpenCV Haar cascade run on a downscaled copy of the gray frame (the loop's usual bottleneck).

    ``detect_width``: frames wider than this are shrunk to it before detection (boxes are scaled
    back). ``min_size``: smallest face, in pixels of the full frame.
    """

    def __init__(self, cascade_path: str | Path | None = None, detect_width: int = 320,
                 scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 40):
        if not hasattr(cv2, "CascadeClassifier"):
            raise DetectorError("this OpenCV has no CascadeClassifier (OpenCV 5.x): pip install 'opencv-python-headless<5'")
        path = Path(cascade_path) if cascade_path else default_cascade_path()
        if not path.is_file():
            raise DetectorError(f"face cascade not found: {path}")
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise DetectorError(f"cannot load face cascade {path} (not a cascade XML file)")
        self.detect_width = int(detect_width)
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size = int(min_size)

    def detect(self, gray: np.ndarray) -> np.ndarray:
        h, w = gray.shape[:2]
        scale = min(1.0, self.detect_width / float(w)) if self.detect_width > 0 else 1.0
        # contract.resize: the same pixels on x86 and ARM, so the cascade sees the same image on a Pi
        small = gray if scale == 1.0 else resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))))
        m = max(1, int(round(self.min_size * scale)))
        boxes = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=(m, m))
        if len(boxes) == 0:
            return np.zeros((0, 4), np.int32)
        return np.round(np.asarray(boxes, np.float32) / scale).astype(np.int32)


class BlazeFaceDetector:
    """MediaPipe BlazeFace through LiteRT: the whole gray frame letterboxed into the model's square.

    ``spec``: ``blazeface.SHORT_RANGE`` (128x128, faces within ~2 m) or ``FULL_RANGE`` (192x192,
    ~5 m). ``min_size``: smallest face kept, in frame pixels. The model's input size fixes the
    work per call, so there is no ``detect_width``.
    """

    def __init__(self, spec: blazeface.BlazeFaceSpec = blazeface.SHORT_RANGE, model_path: str | Path | None = None,
                 threads: int | None = 1, min_size: int = 40, min_score: float | None = None):
        self.spec = spec
        self.path = Path(model_path) if model_path else BLAZEFACE_DIR / spec.file
        if not self.path.is_file():
            raise DetectorError(f"{spec.name} model not found: {self.path}; {FETCH_HINT}")
        try:
            with quiet_native_stderr():  # LiteRT's INFO lines; failures still raise
                # interpreter_class() raises InterpreterMissing (exit 4, names the pip command) first
                self.interpreter = interpreter_class()(model_path=str(self.path), num_threads=threads)
        except Exception as e:  # LiteRT raises ValueError/RuntimeError with its own text
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DetectorError(f"{self.path}: not a loadable {spec.name} model ({first}); {FETCH_HINT}") from None
        inp, out = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        size, n = spec.input_size, spec.num_anchors
        shapes = sorted(tuple(int(v) for v in d["shape"]) for d in out)
        if (len(inp) != 1 or tuple(int(v) for v in inp[0]["shape"]) != (1, size, size, 3)
                or shapes != [(1, n, 1), (1, n, blazeface.NUM_COORDS)]):
            raise DetectorError(f"{self.path}: not the {spec.name} model (expected input (1, {size}, {size}, 3) and "
                                f"outputs (1, {n}, 16) + (1, {n}, 1)); {FETCH_HINT}")
        self._in = inp[0]["index"]
        self._boxes = next(d["index"] for d in out if int(d["shape"][-1]) == blazeface.NUM_COORDS)
        self._scores = next(d["index"] for d in out if int(d["shape"][-1]) == 1)
        self.interpreter.allocate_tensors()
        self.anchors = blazeface.ssd_anchors(spec)
        self.min_size = int(min_size)
        self.min_score = spec.min_score if min_score is None else float(min_score)
        self._input = np.full((1, size, size, 3), -1.0, np.float32)  # border stays black (-1)
        self._letterbox: Optional[blazeface.Letterbox] = None
        self._shape: tuple[int, ...] = ()

    def _fit(self, shape: tuple[int, ...]) -> blazeface.Letterbox:
        """The letterbox for this frame size, recomputed (and the border reset) only when the size changes."""
        if self._shape != shape[:2]:
            self._letterbox = blazeface.Letterbox.fit(shape, self.spec.input_size)
            self._input.fill(-1.0)
            self._shape = shape[:2]
        return self._letterbox

    def detect_scored(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (the model's own boxes (N, 4) float32 x0 y0 x1 y1 in frame pixels, scores (N,)), best first."""
        size = self.spec.input_size
        box = self._fit(gray.shape)
        blazeface.fill_input(gray, box, self._input)
        self.interpreter.set_tensor(self._in, self._input)
        self.interpreter.invoke()
        boxes, scores = blazeface.select(self.interpreter.get_tensor(self._boxes),
                                         self.interpreter.get_tensor(self._scores),
                                         self.anchors, float(size), self.min_score)
        boxes, scores = blazeface.weighted_nms(boxes, scores)
        return box.to_frame(boxes, size), scores

    def detect(self, gray: np.ndarray) -> np.ndarray:
        xyxy, _ = self.detect_scored(gray)
        boxes = blazeface.to_face_boxes(xyxy, self.spec, gray.shape)
        return boxes[np.maximum(boxes[:, 2], boxes[:, 3]) >= self.min_size]


def make_detector(name: str, *, detect_width: int = 320, min_size: int = 40, cascade: str | Path | None = None,
                  threads: int | None = 1) -> Detector:
    """A detector by its ``--detector`` name (one of ``DETECTORS``)."""
    if name == "haar":
        return HaarDetector(cascade, detect_width=detect_width, min_size=min_size)
    if name in blazeface.SPECS:
        return BlazeFaceDetector(blazeface.SPECS[name], threads=threads, min_size=min_size)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), boxes as (x, y, w, h)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = (a[:, 2:3] * a[:, 3:4]) + (b[:, 2] * b[:, 3]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


@dataclass
class Track:
    id: int
    box: np.ndarray                     # (4,) int32 x, y, w, h
    probs: Optional[np.ndarray] = None  # smoothed class probabilities
    hits: int = 1                       # detection rounds this face was found in
    missed: int = 0                     # detection rounds in a row it was not

    @property
    def area(self) -> int:
        return int(self.box[2]) * int(self.box[3])


@dataclass
class IoUTracker:
    """Greedy IoU matching of detections to tracks; EMA of probabilities per track.

    A track not matched in a detection round is kept (hidden) for ``max_missed`` rounds, so a
    single missed detection does not reset its id or smoothing; ``visible`` lists the tracks
    found in the last round, in creation order.
    """
    iou_threshold: float = 0.3
    max_missed: int = 1
    alpha: float = 0.5
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def update(self, boxes: np.ndarray) -> list[Track]:
        """One detection round: match ``boxes`` (N, 4) to tracks, start new ones, age the rest."""
        boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
        matched_tracks: set[int] = set()
        matched_boxes: set[int] = set()
        if self.tracks and len(boxes):
            iou = iou_matrix(np.stack([t.box for t in self.tracks]), boxes)
            # Greedy: best pairs first. N and M are a handful of faces; the sort is vectorised.
            order = np.argsort(-iou, axis=None)
            for flat in order:
                ti, bi = divmod(int(flat), len(boxes))
                if iou[ti, bi] < self.iou_threshold:
                    break
                if ti in matched_tracks or bi in matched_boxes:
                    continue
                matched_tracks.add(ti)
                matched_boxes.add(bi)
                track = self.tracks[ti]
                track.box, track.hits, track.missed = boxes[bi].copy(), track.hits + 1, 0
        kept = []
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.missed += 1
                if track.missed > self.max_missed:
                    continue
            kept.append(track)
        for bi in range(len(boxes)):
            if bi not in matched_boxes:
                kept.append(Track(self.next_id, boxes[bi].copy()))
                self.next_id += 1
        self.tracks = kept
        return self.visible

    @property
    def visible(self) -> list[Track]:
        return [t for t in self.tracks if t.missed == 0]

    def smooth(self, tracks: list[Track], probs: np.ndarray) -> np.ndarray:
        """Fold this frame's probabilities (one row per track) into each track's EMA; return the smoothed rows."""
        if not tracks:
            return np.zeros((0, probs.shape[-1] if probs.ndim == 2 else 0), np.float32)
        prev = np.stack([t.probs if t.probs is not None else np.full(probs.shape[1], np.nan, np.float32)
                         for t in tracks])
        out = ema(prev, probs, self.alpha)
        for track, row in zip(tracks, out):
            track.probs = row
        return out

    def reset(self) -> None:
        """Forget all tracks (between unrelated still images); ids keep counting up."""
        self.tracks = []
