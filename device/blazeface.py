"""BlazeFace (MediaPipe face detection) in numpy: anchors, box decoding, score threshold, weighted NMS.

MediaPipe's face detector is an SSD: for every anchor (a cell centre on one or more feature
grids) the model outputs 16 numbers (box centre offset x, y, box width and height, and six
keypoints, all in input pixels) and one score logit. Decoding follows MediaPipe's
``face_detection_{short,full}_range.pbtxt`` options: fixed-size anchors (width = height = 1),
``reverse_output_order`` (x before y), scales = the input size, sigmoid scores, then weighted
non-maximum suppression with IoU 0.3. Everything here is vectorised over the anchors; the only
Python loop is over the faces that survive (one pass per output face).

The input is the gray frame letterboxed into the model's square (aspect ratio kept, zero border,
as MediaPipe's ImageToTensorCalculator does), scaled to [-1, 1] and replicated to 3 channels.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

import numpy as np

from .contract import resize

NUM_COORDS = 16          # x, y, w, h + 6 keypoints (x, y)
NMS_IOU = 0.3            # MediaPipe: NonMaxSuppressionCalculator min_suppression_threshold


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One MediaPipe face-detection model: its file and the SSD options its graph uses."""
    name: str
    file: str
    input_size: int                  # square input, pixels
    strides: tuple[int, ...]         # one per SSD layer; equal neighbours share a grid
    anchors_per_layer: int           # 2 when interpolated_scale_aspect_ratio is 1.0, else 1
    min_score: float                 # MediaPipe's min_score_thresh for this model
    # BlazeFace's box runs from the brows to below the chin; ferlite's boxes follow FER2013's
    # framing (forehead to chin, what the classifier was trained on, and about what Haar returns).
    # The box is grown by ``box_scale`` and its centre moved up by ``box_shift`` x its side. Fitted
    # as medians on the detection set's calib split (Training faces, never the scored ones):
    # scripts/docs/bench_detectors.py prints them ("raw box geometry").
    box_scale: float = 1.0
    box_shift: float = 0.0

    @property
    def num_anchors(self) -> int:
        return len(ssd_anchors(self))


# face_detection_short_range.pbtxt: faces within ~2 m (selfie / dashboard / kiosk distance).
SHORT_RANGE = BlazeFaceSpec("blazeface", "face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2, 0.5,
                            box_scale=1.22, box_shift=0.083)
# face_detection_full_range.pbtxt: faces within ~5 m (MediaPipe ships a sparse copy of the same net).
FULL_RANGE = BlazeFaceSpec("blazeface-full", "face_detection_full_range.tflite", 192, (4,), 1, 0.6,
                           box_scale=1.21, box_shift=0.047)
SPECS = {s.name: s for s in (SHORT_RANGE, FULL_RANGE)}


def ssd_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """(N, 2) float32 anchor centres (x, y) in [0, 1], in the order the model emits them.

    MediaPipe's SsdAnchorsCalculator: consecutive layers with the same stride share one grid, and
    each cell of it gets ``anchors_per_layer`` anchors per such layer, row by row (y outer, x inner).
    """
    out = []
    for stride, group in groupby(spec.strides):
        repeats = len(list(group)) * spec.anchors_per_layer
        cells = spec.input_size // stride
        c = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(c, c, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), repeats, axis=0))
    return np.concatenate(out).astype(np.float32)


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, scale: float) -> np.ndarray:
    """(N, >=4) raw regressors + (N, 2) anchors -> (N, 4) float32 boxes (x0, y0, x1, y1) in [0, 1] units.

    The centre is the anchor plus the offset / scale; width and height are raw / scale (anchors
    have a fixed size of 1, so no anchor size multiplies them)."""
    raw = np.asarray(raw, np.float32).reshape(len(anchors), -1)
    cx = raw[:, 0] / scale + anchors[:, 0]
    cy = raw[:, 1] / scale + anchors[:, 1]
    hw = raw[:, 2] / (2.0 * scale)
    hh = raw[:, 3] / (2.0 * scale)
    return np.stack([cx - hw, cy - hh, cx + hw, cy + hh], 1)


def logit(p: float) -> float:
    """Score threshold as a logit: comparing logits skips the sigmoid on the ~900 rejected anchors."""
    return float(np.log(p / (1.0 - p)))


def select(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, scale: float,
           min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Anchors whose score passes ``min_score`` -> (boxes (K, 4) x0 y0 x1 y1 in [0, 1], scores (K,))."""
    raw_scores = np.asarray(raw_scores, np.float32).reshape(-1)
    keep = np.flatnonzero(raw_scores > logit(min_score))
    if not len(keep):
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    boxes = decode_boxes(np.asarray(raw_boxes).reshape(len(anchors), -1)[keep], anchors[keep], scale)
    # MediaPipe clips logits to +-100 before the sigmoid; float64 keeps exp() finite there.
    scores = (1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep].astype(np.float64), -100, 100)))).astype(np.float32)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[valid], scores[valid]


def iou_xyxy(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with each of (K, 4) boxes, all as (x0, y0, x1, y1)."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU
                 ) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: take the best remaining box, average every remaining box
    overlapping it by more than ``iou_threshold`` (itself included) weighted by score, keep the
    best score, drop that cluster; repeat. -> (boxes (M, 4), scores (M,)) best first."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    out_boxes, out_scores = [], []
    while len(boxes):
        cluster = iou_xyxy(boxes[0], boxes) > iou_threshold
        cluster[0] = True  # a degenerate top box still forms its own cluster
        w = scores[cluster]
        out_boxes.append((boxes[cluster] * w[:, None]).sum(0) / w.sum())
        out_scores.append(scores[0])
        boxes, scores = boxes[~cluster], scores[~cluster]
    if not out_boxes:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
    return np.stack(out_boxes).astype(np.float32), np.asarray(out_scores, np.float32)


def to_face_boxes(xyxy: np.ndarray, spec: BlazeFaceSpec, frame_shape: tuple[int, ...]) -> np.ndarray:
    """(K, 4) raw model boxes x0 y0 x1 y1 in frame pixels -> (K, 4) int32 squares (x, y, w, h) in
    FER2013's framing (``spec.box_scale``, ``spec.box_shift``), clipped to the frame."""
    h, w = frame_shape[:2]
    side = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
    cx = (xyxy[:, 0] + xyxy[:, 2]) / 2.0
    cy = (xyxy[:, 1] + xyxy[:, 3]) / 2.0 - spec.box_shift * side
    half = side * spec.box_scale / 2.0
    x0, y0 = np.clip(cx - half, 0, w), np.clip(cy - half, 0, h)
    x1, y1 = np.clip(cx + half, 0, w), np.clip(cy + half, 0, h)
    return np.round(np.stack([x0, y0, x1 - x0, y1 - y0], 1)).astype(np.int32).reshape(-1, 4)


@dataclass(frozen=True)
class Letterbox:
    """Where a frame sits inside the model's square input: ``scale`` (input px per frame px) and padding."""
    scale: float
    pad_x: int
    pad_y: int
    width: int    # the frame's size inside the input
    height: int

    @classmethod
    def fit(cls, frame_shape: tuple[int, ...], size: int) -> "Letterbox":
        h, w = frame_shape[:2]
        scale = size / float(max(h, w))
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        return cls(scale, (size - rw) // 2, (size - rh) // 2, rw, rh)

    def to_frame(self, boxes01: np.ndarray, size: int) -> np.ndarray:
        """(K, 4) x0 y0 x1 y1 in [0, 1] of the input square -> the same in frame pixels."""
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        return (boxes01 * size - pad) / self.scale


def fill_input(gray: np.ndarray, box: Letterbox, out: np.ndarray) -> np.ndarray:
    """Write the gray frame, resized into its letterbox and scaled to [-1, 1], into all 3 channels
    of ``out`` (1, S, S, 3) float32. The border keeps whatever ``out`` holds (-1 = black, set once)."""
    small = resize(gray, (box.width, box.height))  # area when shrinking; the same pixels on x86 and ARM
    region = out[0, box.pad_y:box.pad_y + box.height, box.pad_x:box.pad_x + box.width]
    region[...] = (small.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0))[..., None]
    return out
