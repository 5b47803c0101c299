"""Annotation for --preview and --save-video: face boxes, track ids, labels, a status line.

Only runs when the user asked for a preview or a saved video; the classifying loop itself
never draws. Boxes are in the gray frame's pixels; they are scaled to the colour image (the
Pi's main stream can be larger than the lores stream the faces were found in).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .errors import EnvironmentMissing, FerliteError, InputError

# BGR colour per label name, whichever label set the model's metadata names: FER2013's seven and FER+'s
# Contempt; a name not listed here is drawn in DEFAULT_COLOUR.
COLOURS = {"Angry": (40, 40, 230), "Disgust": (40, 140, 40), "Fear": (160, 40, 160), "Happy": (40, 200, 240),
           "Sad": (200, 120, 40), "Surprise": (230, 200, 40), "Neutral": (200, 200, 200),
           "Contempt": (60, 90, 150)}
DEFAULT_COLOUR = (0, 255, 0)


def annotate(image: np.ndarray, gray_shape, faces: Sequence[dict], status: str = "") -> np.ndarray:
    """A BGR copy of ``image`` with each face's box, ``#track label p`` and a status line drawn on it."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    sy, sx = out.shape[0] / gray_shape[0], out.shape[1] / gray_shape[1]
    thick = max(1, round(out.shape[0] / 360))
    font = 0.4 * thick + 0.1
    for f in faces:
        x, y, w, h = (int(v) for v in f["box"])
        x0, y0, x1, y1 = int(x * sx), int(y * sy), int((x + w) * sx), int((y + h) * sy)
        colour = COLOURS.get(f["label"], DEFAULT_COLOUR)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick)
        text = f"#{f['track']} {f['label']} {float(f['score']):.2f}"
        cv2.putText(out, text, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, font, colour, thick, cv2.LINE_AA)
    if status:
        cv2.putText(out, status, (6, out.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return out


class SinkError(FerliteError):
    """A preview window or a video file cannot be opened; the subclass says which."""


class DisplayMissing(SinkError, EnvironmentMissing):
    """--preview without a display, or with an OpenCV build that has no windows."""


class VideoFileError(SinkError, InputError):
    """--save-video names a file that cannot be written as mp4."""


class PreviewSink:
    """An OpenCV window; ``show`` returns False when the user pressed q or Esc."""

    def __init__(self, title: str = "ferlite"):
        import os
        import sys
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise DisplayMissing("--preview needs a display, and none is set (no DISPLAY or WAYLAND_DISPLAY); "
                            "use --save-video OUT.mp4 instead")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise DisplayMissing("this OpenCV build cannot open windows (opencv-python-headless); for --preview "
                            "install opencv-python (or python3-opencv from apt), or use --save-video") from None
        self.title = title

    def show(self, image: np.ndarray) -> bool:
        cv2.imshow(self.title, image)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass


class VideoSink:
    """An annotated mp4 (mp4v), written to a temporary file and renamed into place on ``close``,
    so the output is never a half-written file. Opened at the first frame (its size is the video's)."""

    def __init__(self, path, fps: float):
        from pathlib import Path
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise VideoFileError(f"--save-video writes mp4 (mp4v): give a .mp4 file name, not {self.path.name}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = float(fps) if fps and fps > 0 else 15.0
        self.size = None
        self.writer = None
        self.frames = 0

    def write(self, image: np.ndarray) -> bool:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self.writer is None:
            self.size = (image.shape[1], image.shape[0])
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise VideoFileError(f"cannot write video {self.path} (OpenCV VideoWriter with mp4v failed)")
        if (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1
        return True

    def close(self) -> None:
        import os
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            if self.frames:
                os.replace(self.tmp, self.path)
        if self.tmp.exists():
            self.tmp.unlink()
