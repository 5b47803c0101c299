"""The camera loop: capture -> detect (every N frames) / track -> crop -> classify -> smooth -> report.

Everything is built before the loop (source, detector, tracker, classifier, mode, writer,
sinks); ``Loop.step`` only orchestrates small named steps, each usable on a still image:

    boxes  = detect_step(detector, tracker, gray, ...)   # tracks visible in this frame
    crops  = crop_batch(gray, boxes, out)                # contract.crop_face, into a reused buffer
    probs  = classifier.predict(crops)                   # one call for all faces of the frame
    smooth = tracker.smooth(tracks, probs)               # EMA per tracked face
    faces  = face_records(tracks, smooth, labels)

Log records (JSON Lines): ``start`` (config), ``frame`` (faces), ``event`` (driver/kiosk),
``fps`` (every ``fps_every`` frames), ``skipped`` (an unreadable image of a folder, passed over),
``summary`` (last line, also on errors and signals).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional, Sequence

import numpy as np

from .contract import INPUT_SIZE, crop_face
from .detect import IoUTracker, Track
from .overlay import annotate
from .pace import Pacer
from .sources import Frame, Source, SourceError

STAGES = ("capture", "detect", "crop", "classify", "output")
MAX_FACES = 16


def detect_step(detector, tracker: IoUTracker, gray: np.ndarray, index: int, detect_every: int,
                stills: bool = False) -> tuple[list[Track], bool]:
    """Run the detector on detection frames (every ``detect_every``-th, always for stills) and
    match its boxes to tracks; in between, the tracks keep their last boxes. -> (visible tracks, detected?)"""
    if stills:
        tracker.reset()
    if stills or index % detect_every == 0 or not tracker.tracks:
        return tracker.update(detector.detect(gray)), True
    return tracker.visible, False


def crop_batch(gray: np.ndarray, boxes: Sequence, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Each box cut out of ``gray`` with the contract's margin and size -> (N, 48, 48) uint8."""
    n = len(boxes)
    if out is None or len(out) < n:
        out = np.empty((max(n, 1), INPUT_SIZE, INPUT_SIZE), np.uint8)
    for i, box in enumerate(boxes):
        out[i] = crop_face(gray, box)
    return out[:n]


def face_records(tracks: Sequence[Track], probs: np.ndarray, labels: Sequence[str]) -> list[dict]:
    """Tracks and their smoothed probabilities -> the face dicts modes, overlay and the log use."""
    faces = []
    top = probs.argmax(1) if len(probs) else []
    for track, p, k in zip(tracks, probs, top):
        faces.append({"track": track.id, "box": [int(v) for v in track.box], "label": labels[int(k)],
                      "score": float(p[k]), "probs": p})
    return faces


def log_face(face: dict, labels: Sequence[str]) -> dict:
    return {"track": face["track"], "box": face["box"], "label": face["label"],
            "probs": {k: round(float(v), 4) for k, v in zip(labels, face["probs"])}}


class StageTimer:
    """Total seconds per stage; ``mean_ms`` per processed frame."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.total = dict.fromkeys(STAGES, 0.0)
        self.detect_calls = 0
        self.detect_time = 0.0

    def mean_ms(self, frames: int) -> dict:
        out = {k: round(1000.0 * v / frames, 3) if frames else 0.0 for k, v in self.total.items()}
        out["per_frame"] = round(sum(out[k] for k in STAGES), 3)
        out["detect_per_call"] = round(1000.0 * self.detect_time / self.detect_calls, 3) if self.detect_calls else 0.0
        return out


class Loop:
    def __init__(self, source: Source, detector, tracker: IoUTracker, classifier, mode, writer,
                 detect_every: int = 3, max_frames: Optional[int] = None, fps_every: int = 30,
                 preview=None, video=None, stop: Optional[threading.Event] = None,
                 clock: Callable[[], float] = time.perf_counter, max_faces: int = MAX_FACES,
                 log_frames: bool = True, max_fps: Optional[float] = None):
        if detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        self.source, self.detector, self.tracker, self.classifier = source, detector, tracker, classifier
        self.mode, self.writer = mode, writer
        self.detect_every, self.max_frames, self.fps_every = detect_every, max_frames, fps_every
        self.preview, self.video = preview, video
        self.stop = stop if stop is not None else threading.Event()
        self.clock = clock
        self.pacer = Pacer(max_fps, self.stop, clock)
        self.labels = list(classifier.labels)
        self.max_faces = max_faces
        self.log_frames = log_frames
        self.crops = np.empty((max_faces, INPUT_SIZE, INPUT_SIZE), np.uint8)  # reused every frame
        self.timer = StageTimer(clock)
        self.frames = 0
        self.face_count = 0
        self.skipped = 0
        self.event_counts: dict[str, int] = {}
        self.last_t = 0.0
        self.status = "running"
        self.error: Optional[str] = None

    # -- one frame -------------------------------------------------------------------
    def process(self, frame: Frame) -> tuple[list[dict], list[dict]]:
        """Detect, classify and smooth one frame; feed the mode. -> (faces, events)"""
        clk, total = self.clock, self.timer.total
        t0 = clk()
        tracks, detected = detect_step(self.detector, self.tracker, frame.gray, frame.index,
                                       self.detect_every, self.source.stills)
        if len(tracks) > self.max_faces:  # keep the largest faces
            tracks = sorted(tracks, key=lambda tr: -tr.area)[:self.max_faces]
        t1 = clk()
        crops = crop_batch(frame.gray, [tr.box for tr in tracks], self.crops)
        t2 = clk()
        if len(tracks):
            probs = self.classifier.predict(crops)
            smooth = self.tracker.smooth(tracks, probs)
        else:
            smooth = np.zeros((0, len(self.labels)), np.float32)
        t3 = clk()
        faces = face_records(tracks, smooth, self.labels)
        events = self.mode.update(frame.t, faces)
        total["detect"] += t1 - t0
        total["crop"] += t2 - t1
        total["classify"] += t3 - t2
        if detected:
            self.timer.detect_calls += 1
            self.timer.detect_time += t1 - t0
        return faces, events

    def report(self, frame: Frame, faces: list[dict], events: list[dict]) -> bool:
        """Log the frame and its events, draw/show/save if asked. -> False when the user quit the preview."""
        keep_going = True
        if self.log_frames:
            rec = {"type": "frame", "frame": frame.index, "t": round(frame.t, 3),
                   "faces": [log_face(f, self.labels) for f in faces]}
            if frame.name:
                rec["image"] = frame.name
            self.writer.write(rec)
        self._events(frame.index, events)
        if (self.preview or self.video) and frame.image is not None:
            status = f"{self.frames + 1} frames  {self._fps():.1f} fps"
            img = annotate(frame.image, frame.gray.shape, faces, status)
            if self.video:
                self.video.write(img)
            if self.preview:
                keep_going = self.preview.show(img)
        return keep_going

    def _events(self, index: int, events: list[dict]) -> None:
        for ev in events:
            self.event_counts[ev["event"]] = self.event_counts.get(ev["event"], 0) + 1
            self.writer.write({"type": "event", "frame": index, **ev})

    def _fps(self) -> float:
        busy = sum(self.timer.total.values())
        return self.frames / busy if busy > 0 else 0.0

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> dict:
        """Process frames until the source ends, ``max_frames``, a stop request, or an error.
        Always ends the mode's open events and writes the summary; then re-raises any error."""
        clk, total = self.clock, self.timer.total
        self.started = clk()
        window_start, window_frames = self.started, 0
        try:
            while not self.stop.is_set():
                if self.max_frames is not None and self.frames >= self.max_frames:
                    self.status = "max_frames"
                    break
                self.pacer.wait()  # --max-fps: idle until the next frame's slot
                if self.stop.is_set():
                    continue
                t0 = clk()
                frame = self.source.read()
                total["capture"] += clk() - t0
                for rec in self.source.take_skipped():  # unreadable images: named in the log, counted, passed over
                    self.skipped += 1
                    self.writer.write(rec)
                if frame is None:
                    self.status = "end_of_source"
                    break
                faces, events = self.process(frame)
                t4 = clk()
                keep_going = self.report(frame, faces, events)
                total["output"] += clk() - t4
                self.frames += 1
                self.face_count += len(faces)
                self.last_t = frame.t
                window_frames += 1
                if self.fps_every and self.frames % self.fps_every == 0:
                    now = clk()
                    self.writer.write({"type": "fps", "frame": frame.index, "t": round(frame.t, 3),
                                       "fps": round(window_frames / max(now - window_start, 1e-9), 2),
                                       "faces": len(faces)})  # a fleet dashboard shows it (device/fleet.py)
                    window_start, window_frames = now, 0
                if not keep_going:
                    self.status = "preview_closed"
                    break
            else:
                self.status = getattr(self.stop, "reason", None) or "stopped"
        except SourceError as e:
            self.status, self.error = "error", str(e)
            raise
        except BaseException as e:
            self.status, self.error = "error", f"{type(e).__name__}: {e}"
            raise
        finally:
            self.ended = clk()
            self._events(self.frames, self.mode.close(self.last_t))
            self.summary = self.make_summary()
            self.writer.write(self.summary)
        return self.summary

    def make_summary(self) -> dict:
        wall = max(self.ended - self.started, 1e-9)
        s = {"type": "summary", "status": self.status, "frames": self.frames, "faces": self.face_count,
             "tracks": self.tracker.next_id - 1, "duration_s": round(self.last_t, 3),
             "wall_s": round(wall, 3), "fps": round(self.frames / wall, 2),
             "latency_ms": self.timer.mean_ms(self.frames), "detect_every": self.detect_every,
             "events": dict(self.event_counts)}
        if self.pacer.period:
            s["max_fps"] = round(1.0 / self.pacer.period, 3)
            s["idle_share"] = round(self.pacer.waited / wall, 3)  # of the wall time, waiting for the next slot
        if self.source.stills:
            s["skipped"] = self.skipped
        if self.error:
            s["error"] = self.error
        return s
