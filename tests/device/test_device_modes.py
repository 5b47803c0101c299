"""Driver events and kiosk aggregates on synthetic per-frame results (pure functions, no model)."""
from __future__ import annotations

import numpy as np
import pytest

from device.contract import LABELS
from device.modes import DriverMonitor, KioskAggregator, largest_face


def probs(**p):
    v = np.zeros(len(LABELS), np.float32)
    for k, x in p.items():
        v[LABELS.index(k)] = x
    rest = 1.0 - v.sum()
    v[LABELS.index("Neutral")] += rest
    return v


def face(track, size=100, **p):
    return {"track": track, "box": [0, 0, size, size], "probs": probs(**p)}


def run(monitor, frames, fps=10.0):
    """frames: list of per-frame face lists at ``fps`` -> all events, with the close at the end."""
    events = []
    for i, faces in enumerate(frames):
        events += monitor.update(i / fps, faces)
    return events + monitor.close((len(frames) - 1) / fps)


def test_largest_face_is_the_driver():
    assert largest_face([]) is None
    assert largest_face([face(1, 50), face(2, 120), face(3, 80)])["track"] == 2


def test_driver_absent_event_has_start_and_end():
    m = DriverMonitor(LABELS, absent_after=1.0)
    frames = [[face(1)]] * 10 + [[]] * 25 + [[face(1)]] * 5  # gone from t=1.0 to t=3.5
    ev = run(m, frames)
    assert ev == [
        {"event": "absent", "phase": "start", "t": 2.1, "start": 1.0},
        {"event": "absent", "phase": "end", "t": 3.5, "start": 1.0, "end": 3.5, "duration": 2.5},
    ]


def test_driver_short_absence_is_no_event():
    m = DriverMonitor(LABELS, absent_after=1.0)
    assert run(m, [[face(1)]] * 10 + [[]] * 8 + [[face(1)]] * 5) == []


def test_driver_absence_open_at_the_end_is_closed():
    ev = run(DriverMonitor(LABELS, absent_after=0.5), [[face(1)]] * 3 + [[]] * 10)
    assert [(e["phase"], e.get("reason")) for e in ev] == [("start", None), ("end", "end of stream")]
    assert ev[1]["end"] == 1.2


def test_driver_sustained_alert():
    m = DriverMonitor(LABELS, alert_labels=("Angry", "Fear", "Sad"), alert_threshold=0.6, alert_after=2.0)
    frames = ([[face(1, Happy=0.9)]] * 10 + [[face(1, Sad=0.7)]] * 15 + [[face(1, Fear=0.8)]] * 10
              + [[face(1, Sad=0.3)]] * 5)
    ev = run(m, frames)
    assert len(ev) == 2
    start, end = ev
    assert start == {"event": "alert", "phase": "start", "t": 3.1, "start": 1.0, "label": "Fear", "score": 0.8,
                     "track": 1}
    assert end == {"event": "alert", "phase": "end", "t": 3.5, "start": 1.0, "end": 3.5, "duration": 2.5,
                   "label": "Fear", "peak": 0.8, "track": 1}


def test_driver_alert_only_for_the_largest_face_and_not_too_short():
    m = DriverMonitor(LABELS, alert_threshold=0.6, alert_after=1.0)
    # a small angry passenger, a calm large driver: no alert
    assert run(m, [[face(1, 200, Happy=0.9), face(2, 60, Angry=0.9)]] * 30) == []
    # the driver angry for 0.9 s only: no alert
    m = DriverMonitor(LABELS, alert_threshold=0.6, alert_after=1.0)
    assert run(m, [[face(1, Angry=0.9)]] * 10 + [[face(1)]] * 10) == []


def test_driver_rejects_unknown_alert_labels():
    with pytest.raises(ValueError):
        DriverMonitor(LABELS, alert_labels=("Angry", "Bored"))


def test_kiosk_aggregates_every_interval():
    k = KioskAggregator(LABELS, interval=1.0)
    frames = ([[face(1, Happy=0.9), face(2, Sad=0.8)]] * 10      # t 0.0-0.9: two faces
              + [[face(2, Sad=0.8)]] * 10                          # t 1.0-1.9: one face
              + [[]] * 5)                                          # t 2.0-2.4: nobody
    ev = run(k, frames)
    assert [(e["start"], e["end"], e["frames"], e["faces_seen"], e["face_frames"]) for e in ev] == [
        (0.0, 1.0, 10, 2, 20), (1.0, 2.0, 10, 1, 10), (2.0, 2.4, 5, 0, 0)]
    assert ev[0]["distribution"]["Happy"] == 0.5 and ev[0]["distribution"]["Sad"] == 0.5
    assert ev[1]["distribution"]["Sad"] == 1.0 and sum(ev[1]["distribution"].values()) == pytest.approx(1.0)
    assert ev[0]["mean_probs"]["Happy"] == pytest.approx(0.45, abs=1e-3)
    assert ev[2]["partial"] is True and set(ev[2]["distribution"].values()) == {0.0}
    assert "partial" not in ev[0]


def test_kiosk_skips_empty_windows_after_a_gap():
    k = KioskAggregator(LABELS, interval=1.0)
    assert k.update(0.0, [face(1)]) == []
    ev = k.update(5.5, [face(2)])  # camera stalled for 5 s
    assert [(e["start"], e["end"], e["frames"]) for e in ev] == [(0.0, 1.0, 1)]
    (last,) = k.close(5.6)
    assert (last["start"], last["frames"], last["faces_seen"]) == (5.0, 1, 1)
