"""The fleet as a consumer sees it: messages in, duplicates out, one line per device.

Duplicates: QoS 1 delivers at least once, so after a reconnect a device may send a record again.
Every record carries (device, stream, seq); per device and stream the highest ``seq`` seen is
kept and anything at or below it is a duplicate (a device sends in order and resends from its
oldest unacknowledged record, so a lower number is always one already seen).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .topics import split_topic


@dataclass
class DeviceView:
    device: str
    state: str = "?"                  # online / offline (retained presence), ? until it says
    last_seen: float = 0.0            # time.time() of the newest message
    mode: str | None = None
    fps: float | None = None
    faces: int | None = None          # in the frame that closed the newest fps window
    open_alerts: dict = field(default_factory=dict)  # driver: 'alert' / 'absent' -> the start event
    records: int = 0
    duplicates: int = 0
    ended: str | None = None          # the last summary's status (max_frames, SIGTERM, ...)

    def line(self, now: float) -> str:
        seen = f"{now - self.last_seen:5.1f}s ago" if self.last_seen else "never"
        fps = f"{self.fps:6.1f}" if self.fps is not None else "     -"
        faces = f"{self.faces:2d}" if self.faces is not None else " -"
        alerts = ", ".join(f"{k} {e.get('label', '')}".strip() + f" since t={e.get('start')}"
                           for k, e in sorted(self.open_alerts.items())) or "-"
        ended = f"  ended: {self.ended}" if self.ended else ""
        return (f"{self.device:<16} {self.state:<7} seen {seen}  fps {fps}  faces {faces}  "
                f"alerts {alerts}  records {self.records} (+{self.duplicates} dup){ended}")


class Fleet:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.devices: dict[str, DeviceView] = {}
        self.highest: dict[tuple[str, str], int] = {}

    def receive(self, name: str, payload: bytes, now: float | None = None) -> dict | None:
        """One MQTT message -> the message dict annotated for the log (``topic``, ``received``,
        ``duplicate`` when it is one), or None when it is not a fleet message."""
        where = split_topic(self.prefix, name)
        if where is None:
            return None
        try:
            message = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        now = time.time() if now is None else now
        view = self.devices.setdefault(where[0], DeviceView(where[0]))
        view.last_seen = now
        out = {**message, "topic": name, "received": round(now, 3)}
        if message.get("type") == "presence":
            view.state = str(message.get("state", "?"))
            return out
        key, seq = (where[0], str(message.get("stream"))), message.get("seq")
        if isinstance(seq, int):
            if seq <= self.highest.get(key, 0):
                view.duplicates += 1
                out["duplicate"] = True
                return out
            self.highest[key] = seq
        view.records += 1
        self._apply(view, message)
        return out

    @staticmethod
    def _apply(view: DeviceView, message: dict) -> None:
        rtype = message.get("type")
        if rtype == "start":
            view.mode, view.ended, view.open_alerts = message.get("mode"), None, {}
        elif rtype == "fps":
            view.fps, view.faces = message.get("fps"), message.get("faces", view.faces)
        elif rtype == "frame":
            view.faces = len(message.get("faces", ()))
        elif rtype == "summary":
            view.ended = message.get("status")
        elif rtype == "event" and message.get("phase") in ("start", "end"):
            if message["phase"] == "start":
                view.open_alerts[message.get("event")] = message
            else:
                view.open_alerts.pop(message.get("event"), None)

    def lines(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return [self.devices[d].line(now) for d in sorted(self.devices)]
