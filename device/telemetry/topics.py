"""Which log records the fleet sees, under which topic, and the envelope around them (one place).

    PREFIX/DEVICE/events      driver events (absent, alert: start and end)
    PREFIX/DEVICE/aggregate   kiosk aggregates
    PREFIX/DEVICE/status      start, fps, summary; and the retained presence (online / offline)
    PREFIX/DEVICE/frames      per-frame faces with probabilities: only with --mqtt-frames

Every record goes out as the JSONL line holds it plus an envelope: ``device``, ``stream`` (the
outbox's id: a new outbox starts a new count), ``seq`` (1, 2, 3, ... per device and stream,
across runs) and ``time`` (Unix seconds when the loop wrote it). A consumer keeps, per device
and stream, the highest ``seq`` seen and drops any record at or below it: the duplicates that
QoS 1's at-least-once delivery allows after a reconnect. Presence messages carry no ``seq``:
they are state, not records.
"""
from __future__ import annotations

ENVELOPE = ("device", "stream", "seq", "time")
STATUS_TYPES = ("start", "fps", "summary")
KINDS = ("events", "aggregate", "status", "frames")
PRESENCE = {"online", "offline"}


def kind_of(record: dict, frames: bool = False) -> str | None:
    """The topic level a record goes to, or None when it stays in the log only."""
    rtype = record.get("type")
    if rtype == "event":
        return "aggregate" if record.get("event") == "aggregate" else "events"
    if rtype in STATUS_TYPES:
        return "status"
    if rtype == "frame" and frames:
        return "frames"
    return None


def topic(prefix: str, device_id: str, kind: str) -> str:
    return f"{prefix}/{device_id}/{kind}"


def split_topic(prefix: str, name: str) -> tuple[str, str] | None:
    """``PREFIX/DEVICE/KIND`` -> (device, kind); None for a topic outside that shape."""
    head = prefix + "/"
    if not name.startswith(head):
        return None
    rest = name[len(head):].split("/")
    return (rest[0], rest[1]) if len(rest) == 2 and rest[1] in KINDS else None


def envelope(device_id: str, stream: str, seq: int, time_s: float, record: dict) -> dict:
    """The message body: the envelope first, then the record exactly as logged."""
    return {"device": device_id, "stream": stream, "seq": seq, "time": round(time_s, 3), **record}


def strip_envelope(message: dict) -> dict:
    """The record as the JSONL log holds it."""
    return {k: v for k, v in message.items() if k not in ENVELOPE}


def presence(device_id: str, state: str, time_s: float | None, reason: str | None = None) -> dict:
    """The retained ``status`` message: ``online`` at connect, ``offline`` at exit or as the Last Will
    (whose time is unknown when it is registered: None)."""
    msg = {"type": "presence", "device": device_id, "state": state}
    if time_s is not None:
        msg["time"] = round(time_s, 3)
    if reason:
        msg["reason"] = reason
    return msg
