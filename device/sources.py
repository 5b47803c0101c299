"""Frame sources: a Pi camera (picamera2), an OpenCV camera index, a video clip, images.

Every source yields ``Frame`` objects: a 2-D uint8 ``gray`` frame for detection and
classification, an optional colour ``image`` for preview / saved video, and a timestamp
``t`` in seconds from the source's own clock (a clip: frame index / fps, so events are
deterministic; a camera: its sensor or capture time). Sources are opened once, before the
loop; ``read()`` returns the next frame or ``None`` at a clean end (end of clip, last image).
A camera that stops delivering frames is retried with backoff, then ``SourceStopped``.
An unreadable image in a folder is passed over, not fatal: ``take_skipped()`` hands the loop a
``skipped`` record naming it and why. File sources can ``loop`` (a soak: the clip played again
and again, frame numbers and clip time running on).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from .contract import to_gray
from .errors import EnvironmentMissing, FerliteError, InputError, RunFailed, UsageError
from .stderr import quiet_native_stderr

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".h264")
LORES_SIZE = (640, 480)


class SourceError(FerliteError):
    """Anything wrong with a frame source; the subclass says what (and so the exit code)."""


class SourceUnavailable(SourceError, InputError):
    """A source that cannot be opened: a missing or unreadable file, a camera that cannot open."""


class SourceStopped(SourceError, RunFailed):
    """A camera that stopped delivering frames mid-run (after its retries)."""


class Picamera2Missing(SourceError, EnvironmentMissing):
    """``--source picamera2`` without the picamera2 package (it comes from apt, not pip)."""


class LoopUnsupported(SourceError, UsageError):
    """``--loop`` with a camera: only a clip or images can be played again."""


@dataclass
class Frame:
    index: int                      # 0-based frame number from this source
    t: float                        # seconds, from the source's clock
    gray: np.ndarray                # 2-D uint8, what detection and classification see
    image: Optional[np.ndarray]     # BGR (or gray) frame for display/saving; None when not asked for
    name: str = ""                  # file name for image sources


class Source:
    """Base class: ``read() -> Frame | None``, ``close()``; ``fps`` (nominal, may be None);
    ``stills`` is True when frames are unrelated pictures (no tracking across them)."""
    fps: Optional[float] = None
    stills: bool = False
    description: str = ""

    def read(self) -> Optional[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def take_skipped(self) -> list[dict]:
        """``skipped`` records of inputs passed over since the last call (unreadable images)."""
        return []

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def _quiet_opencv():
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    old = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(old)


def _split(frame: np.ndarray, want_image: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    return to_gray(frame), (frame if want_image else None)


class ImageSource(Source):
    """One image file or a folder of images (sorted by name); each is read when its turn comes.

    An image that cannot be read is left out with a ``skipped`` record (``take_skipped``); the
    source fails, before the loop, only when no image at all can be read. ``loop``: after the
    last image start again at the first (the unreadable ones already left out)."""
    stills = True

    def __init__(self, path: str | Path, want_image: bool = False, loop: bool = False):
        path = Path(path)
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not self.paths:
                raise SourceUnavailable(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        elif path.is_file():
            self.paths = [path]
        else:
            raise SourceUnavailable(f"source not found: {path}")
        self.want_image, self.loop = want_image, loop
        self.description = f"images:{path}"
        self.skipped: list[dict] = []
        self._i = 0  # position in self.paths
        self._n = 0  # frames delivered: the frame index
        self._first = self._first_readable(path)  # nothing readable fails before the loop starts

    def _first_readable(self, where: Path) -> np.ndarray:
        count, first_why = len(self.paths), None
        while self.paths:
            img, why = self._load(self.paths[0])
            if img is not None:
                return img
            first_why = first_why or f"{self.paths[0].name}: {why}"
            self._skip(0, why)
        if count == 1 and not where.is_dir():
            raise SourceUnavailable(f"cannot read image {where} ({first_why.split(': ', 1)[1]})")
        raise SourceUnavailable(f"none of the {count} images in {where} could be read (first: {first_why})")

    @staticmethod
    def _load(path: Path) -> tuple[Optional[np.ndarray], str]:
        """-> (the image, "") or (None, why it cannot be read)."""
        try:
            with open(path, "rb") as f:  # the reason OpenCV would not give (gone, no permission, empty)
                if not f.read(1):
                    return None, "empty file"
        except OSError as e:
            return None, f"cannot open it: {e.strerror or e}"
        # Decoded in colour and converted by contract.to_gray, like every other source's frames.
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            return None, "not an image OpenCV can decode (corrupt, truncated or another format)"
        return img, ""

    def _skip(self, k: int, why: str) -> None:
        self.skipped.append({"type": "skipped", "image": self.paths[k].name, "path": str(self.paths[k]),
                             "reason": why})
        del self.paths[k]

    def take_skipped(self) -> list[dict]:
        out, self.skipped = self.skipped, []
        return out

    def read(self) -> Optional[Frame]:
        while True:
            if self._i >= len(self.paths):
                if not (self.loop and self.paths):
                    return None
                self._i = 0
            path = self.paths[self._i]
            if self._first is not None:
                img, why, self._first = self._first, "", None
            else:
                img, why = self._load(path)
            if img is None:
                self._skip(self._i, why)
                continue
            gray, image = _split(img, self.want_image)
            frame = Frame(self._n, float(self._n), gray, image, path.name)
            self._i += 1
            self._n += 1
            return frame


class VideoSource(Source):
    """A video clip through OpenCV; timestamps are frame index / fps (deterministic).

    ``loop``: at the end of the clip open it again (a fresh decoder: seeking back is not exact
    for every codec) and go on, frame numbers and clip time running on; ``plays`` counts."""

    def __init__(self, path: str | Path, want_image: bool = False, capture_factory: Callable = cv2.VideoCapture,
                 loop: bool = False):
        path = Path(path)
        if not path.is_file():
            raise SourceUnavailable(f"video not found: {path}")
        self.path, self.capture_factory, self.loop = path, capture_factory, loop
        self.cap = capture_factory(str(path))
        if not self.cap.isOpened():
            raise SourceUnavailable(f"cannot open video {path} (unsupported codec or not a video)")
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else 30.0
        self.want_image = want_image
        self.description = f"video:{path}"
        self.plays = 1
        self._i = 0
        self._play_start = 0  # frame index where this play began

    def read(self) -> Optional[Frame]:
        ok, img = self.cap.read()
        if (not ok or img is None) and self.loop and self._i > self._play_start:  # a play with no frame ends it
            self._reopen()
            ok, img = self.cap.read()
        if not ok or img is None:
            return None  # end of clip
        gray, image = _split(img, self.want_image)
        frame = Frame(self._i, self._i / self.fps, gray, image)
        self._i += 1
        return frame

    def _reopen(self) -> None:
        self.cap.release()
        self.cap = self.capture_factory(str(self.path))
        if not self.cap.isOpened():
            raise SourceStopped(f"{self.description}: cannot open the clip again for play {self.plays + 1} "
                                "(moved, deleted or unreadable)")
        self.plays += 1
        self._play_start = self._i

    def close(self) -> None:
        self.cap.release()


class CameraSource(Source):
    """An OpenCV camera index (USB webcam, V4L2). A failed grab is retried with backoff."""

    def __init__(self, index: int, want_image: bool = False, size=LORES_SIZE, retries: int = 5,
                 backoff: float = 0.05, capture_factory: Optional[Callable] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Optional[Callable[[float], None]] = None):
        # OpenCV logs its own WARN/ERROR lines for a missing camera ahead of our one error line; 4.11
        # (Bookworm's constraints) has no cv2.utils.logging to silence them, so fd 2 is muted too.
        with _quiet_opencv(), quiet_native_stderr():
            self.cap = (capture_factory or cv2.VideoCapture)(index)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceUnavailable(f"cannot open camera {index} (no such device, busy, or no permission)")
        if size:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else None
        self.want_image, self.retries, self.backoff = want_image, retries, backoff
        self.clock, self.sleep = clock, sleep or time.sleep
        self.description = f"camera:{index}"
        self._t0: Optional[float] = None
        self._i = 0

    def read(self) -> Optional[Frame]:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            ok, img = self.cap.read()
            if ok and img is not None:
                now = self.clock()
                if self._t0 is None:
                    self._t0 = now
                gray, image = _split(img, self.want_image)
                frame = Frame(self._i, now - self._t0, gray, image)
                self._i += 1
                return frame
            if attempt < self.retries:
                self.sleep(delay)
                delay *= 2
        raise SourceStopped(f"{self.description}: frame grab failed {self.retries + 1} times in a row "
                          f"(camera disconnected or stalled)")

    def close(self) -> None:
        self.cap.release()


def limited_to_full_lut() -> np.ndarray:
    """256-entry uint8 table mapping limited-range luma (16..235) to full range (0..255)."""
    return np.clip(np.round((np.arange(256) - 16) * (255.0 / 219.0)), 0, 255).astype(np.uint8)


class Picamera2Source(Source):
    """The Raspberry Pi camera through picamera2 (imported here, only when this source is chosen).

    The lores stream is YUV420: its first H rows are the Y (luma) plane, i.e. the grayscale
    frame, with no colour conversion (full range: sYCC is requested, else Y is stretched). The main RGB888 stream (BGR byte order, what OpenCV
    expects) is only fetched when a preview or saved video needs colour. Each request is used
    inside ``captured_request()`` so its buffers go back to the camera straight away.
    """

    def __init__(self, want_image: bool = False, main_size=(1280, 720), lores_size=LORES_SIZE,
                 retries: int = 5, backoff: float = 0.05, camera_num: int = 0,
                 sleep: Optional[Callable[[float], None]] = None):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise Picamera2Missing("picamera2 is not installed: on Raspberry Pi OS run "
                              "'sudo apt install python3-picamera2' (and create the venv with "
                              "--system-site-packages)") from None
        # Video configurations default to Rec709, whose Y is limited range (16..235); the model was
        # trained on full-range gray. Ask libcamera for full-range sYCC; failing that, stretch Y with a LUT.
        colour = {}
        try:
            from libcamera import ColorSpace
            colour = {"colour_space": ColorSpace.Sycc()}
        except ImportError:
            pass
        try:
            self.cam = Picamera2(camera_num)
            config = self.cam.create_video_configuration(
                main={"size": tuple(main_size), "format": "RGB888"},
                lores={"size": tuple(lores_size), "format": "YUV420"}, **colour)
            self.cam.configure(config)
            self.cam.start()
        except Exception as e:  # picamera2 raises IndexError/RuntimeError with its own text
            raise SourceUnavailable(f"cannot open the Pi camera {camera_num} ({type(e).__name__}: {e})") from None
        self.width, self.height = (int(v) for v in lores_size)
        self.want_image, self.retries, self.backoff, self.sleep = want_image, retries, backoff, sleep or time.sleep
        self.description = f"picamera2:{camera_num}"
        self.full_range = bool(colour)
        self._lut = None if self.full_range else limited_to_full_lut()
        self._t0: Optional[int] = None
        self._i = 0

    def _capture(self) -> Frame:
        with self.cam.captured_request() as req:
            yuv = req.make_array("lores")
            y = yuv[:self.height, :self.width]  # the Y plane is the gray frame
            gray = np.ascontiguousarray(y) if self._lut is None else cv2.LUT(y, self._lut)  # own copy either way
            image = np.array(req.make_array("main")) if self.want_image else None
            ts = (req.get_metadata() or {}).get("SensorTimestamp")
        if ts is None:
            ts = time.monotonic_ns()
        if self._t0 is None:
            self._t0 = ts
        frame = Frame(self._i, (ts - self._t0) / 1e9, gray, image)
        self._i += 1
        return frame

    def read(self) -> Optional[Frame]:
        delay, last = self.backoff, None
        for attempt in range(self.retries + 1):
            try:
                return self._capture()
            except Exception as e:  # a timed-out or failed request
                last = e
                if attempt < self.retries:
                    self.sleep(delay)
                    delay *= 2
        raise SourceStopped(f"{self.description}: frame capture failed {self.retries + 1} times in a row "
                          f"({type(last).__name__}: {last})")

    def close(self) -> None:
        try:
            self.cam.stop()
        finally:
            self.cam.close()


def open_source(spec: str, want_image: bool = False, camera_size=LORES_SIZE, main_size=(1280, 720),
                loop: bool = False) -> Source:
    """``picamera2`` | a camera index (``0``) | a video file | an image file | a folder of images.
    ``loop``: play a clip or the images again and again (file sources only)."""
    if loop and (spec == "picamera2" or spec.isdigit()):
        raise LoopUnsupported(f"--loop plays a video or images again; {spec} is a camera")
    if spec == "picamera2":
        return Picamera2Source(want_image=want_image, main_size=main_size, lores_size=camera_size)
    if spec.isdigit():
        return CameraSource(int(spec), want_image=want_image, size=camera_size)
    path = Path(spec)
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, want_image=want_image, loop=loop)
    if path.suffix.lower() in VIDEO_SUFFIXES or path.is_file():
        return VideoSource(path, want_image=want_image, loop=loop)
    raise SourceUnavailable(f"source not found: {spec} (expected picamera2, a camera index, a video, an image or a folder)")
