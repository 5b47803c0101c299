"""What the loop reports beyond per-frame faces: driver events and kiosk aggregates.

Both are pure state machines over per-frame results, driven by the source's timestamps, so
the same clip always gives the same events. A face is a dict with ``track`` (id), ``box``
(x, y, w, h) and ``probs`` (smoothed class probabilities in label order). ``update(t, faces)``
returns the events that frame produced; ``close(t)`` ends whatever is still open.

Events are dicts with ``event`` (``absent`` / ``alert`` / ``aggregate``); state events have
``phase`` ``start`` (the state has lasted longer than its threshold; ``start`` is when it
began) or ``end`` (with ``end`` and ``duration``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

# Names, not indices: they exist in FER2013's seven labels and in FER+'s eight (Contempt added last), so
# the default works with either kind of model; --alert-labels must name labels of the model's metadata.
DRIVER_ALERT_LABELS = ("Angry", "Fear", "Sad")


def _r(x: float) -> float:
    return round(float(x), 3)


def largest_face(faces: Sequence[dict]) -> Optional[dict]:
    """The driver: the face with the largest box (closest to the camera)."""
    if not faces:
        return None
    return max(faces, key=lambda f: int(f["box"][2]) * int(f["box"][3]))


class DriverMonitor:
    """One subject (the largest face). Two timed states:

    - ``absent``: no face for longer than ``absent_after`` seconds;
    - ``alert``: one of ``alert_labels`` at or above ``alert_threshold`` (smoothed probability)
      for longer than ``alert_after`` seconds.
    """

    def __init__(self, labels: Sequence[str], absent_after: float = 2.0,
                 alert_labels: Sequence[str] = DRIVER_ALERT_LABELS, alert_threshold: float = 0.5,
                 alert_after: float = 3.0):
        unknown = [a for a in alert_labels if a not in labels]
        if unknown or not alert_labels:
            raise ValueError(f"alert labels {list(alert_labels)} must be a non-empty subset of {list(labels)}")
        self.labels = list(labels)
        self.alert_idx = np.array([self.labels.index(a) for a in alert_labels])
        self.absent_after, self.alert_after = float(absent_after), float(alert_after)
        self.alert_threshold = float(alert_threshold)
        self._absent_since: Optional[float] = None
        self._absent_on = False
        self._alert_since: Optional[float] = None
        self._alert_on = False
        self._alert_label = ""
        self._alert_peak = 0.0
        self._alert_track: Optional[int] = None

    def update(self, t: float, faces: Sequence[dict]) -> list[dict]:
        events: list[dict] = []
        subject = largest_face(faces)
        # absent
        if subject is not None:
            if self._absent_on:
                events.append(self._end("absent", self._absent_since, t))
            self._absent_since, self._absent_on = None, False
        else:
            if self._absent_since is None:
                self._absent_since = t
            if not self._absent_on and t - self._absent_since > self.absent_after:
                self._absent_on = True
                events.append({"event": "absent", "phase": "start", "t": _r(t), "start": _r(self._absent_since)})
        # alert
        score, label = 0.0, ""
        if subject is not None:
            p = np.asarray(subject["probs"], np.float32)[self.alert_idx]
            k = int(p.argmax())
            score, label = float(p[k]), self.labels[int(self.alert_idx[k])]
        if score >= self.alert_threshold and (self._alert_track in (None, subject["track"])):
            if self._alert_since is None:
                self._alert_since, self._alert_track = t, subject["track"]
                self._alert_label, self._alert_peak = label, score
            if score > self._alert_peak:
                self._alert_peak, self._alert_label = score, label
            if not self._alert_on and t - self._alert_since > self.alert_after:
                self._alert_on = True
                events.append({"event": "alert", "phase": "start", "t": _r(t), "start": _r(self._alert_since),
                               "label": self._alert_label, "score": _r(score), "track": self._alert_track})
        else:
            events.extend(self._stop_alert(t))
        return events

    def _stop_alert(self, t: float, reason: Optional[str] = None) -> list[dict]:
        out = []
        if self._alert_on:
            ev = self._end("alert", self._alert_since, t)
            ev.update(label=self._alert_label, peak=_r(self._alert_peak), track=self._alert_track)
            if reason:
                ev["reason"] = reason
            out.append(ev)
        self._alert_since, self._alert_on, self._alert_track, self._alert_peak = None, False, None, 0.0
        return out

    @staticmethod
    def _end(kind: str, start: float, t: float) -> dict:
        return {"event": kind, "phase": "end", "t": _r(t), "start": _r(start), "end": _r(t), "duration": _r(t - start)}

    def close(self, t: float) -> list[dict]:
        """End open states at the end of the stream (``reason``: ``end of stream``)."""
        events = []
        if self._absent_on:
            ev = self._end("absent", self._absent_since, t)
            ev["reason"] = "end of stream"
            events.append(ev)
        self._absent_since, self._absent_on = None, False
        events.extend(self._stop_alert(t, "end of stream"))
        return events


class KioskAggregator:
    """Every face; every ``interval`` seconds one ``aggregate`` event: frames, distinct faces
    (track ids) seen, face-frames, the distribution of top labels and the mean probabilities."""

    def __init__(self, labels: Sequence[str], interval: float = 10.0):
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.labels = list(labels)
        self.interval = float(interval)
        self._start: Optional[float] = None
        self._reset()

    def _reset(self) -> None:
        self._frames = 0
        self._tracks: set[int] = set()
        self._counts = np.zeros(len(self.labels), np.int64)
        self._prob_sum = np.zeros(len(self.labels), np.float64)
        self._last_t: Optional[float] = None

    def _emit(self, end: float) -> dict:
        n = int(self._counts.sum())
        return {"event": "aggregate", "start": _r(self._start), "end": _r(end), "frames": self._frames,
                "faces_seen": len(self._tracks), "face_frames": n,
                "distribution": {k: _r(c / n) if n else 0.0 for k, c in zip(self.labels, self._counts)},
                "mean_probs": {k: _r(s / n) if n else 0.0 for k, s in zip(self.labels, self._prob_sum)}}

    def update(self, t: float, faces: Sequence[dict]) -> list[dict]:
        events = []
        if self._start is None:
            self._start = t
        if t >= self._start + self.interval:
            events.append(self._emit(self._start + self.interval))
            # Windows stay aligned to the first frame; empty windows (a stalled camera) are skipped.
            self._start += self.interval * np.floor((t - self._start) / self.interval)
            self._reset()
        self._frames += 1
        self._last_t = t
        if faces:
            probs = np.stack([np.asarray(f["probs"], np.float64) for f in faces])
            self._counts += np.bincount(probs.argmax(1), minlength=len(self.labels))
            self._prob_sum += probs.sum(0)
            self._tracks.update(int(f["track"]) for f in faces)
        return events

    def close(self, t: float) -> list[dict]:
        """The last, partial window (if it holds any frame)."""
        if self._start is None or self._frames == 0:
            return []
        ev = self._emit(max(t, self._last_t if self._last_t is not None else t))
        ev["partial"] = True
        self._reset()
        self._start = None
        return [ev]


class NoMode:
    """Faces only, no events (``--mode none``)."""

    def update(self, t: float, faces: Sequence[dict]) -> list[dict]:
        return []

    def close(self, t: float) -> list[dict]:
        return []
