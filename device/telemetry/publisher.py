"""The publishing thread: records handed over by the camera loop -> outbox on disk -> broker (QoS 1).

The camera loop only calls ``put()``, which appends to an in-memory queue and returns: no disk,
no network, no lock it could wait on. This thread moves queued records into the outbox (where
they get their sequence numbers), publishes the oldest unsent ones with at most ``WINDOW`` in
flight, and deletes each from the outbox when its PUBACK arrives. When the connection breaks,
whatever was in flight is sent again from the oldest unacknowledged record after the reconnect:
a consumer may see a record twice (same ``seq``), never a gap.

Presence: each connection registers a retained Last Will ``offline`` on ``PREFIX/DEVICE/status``
and publishes a retained ``online``; a clean exit publishes a retained ``offline`` itself.

At exit (``close``) the thread stores what is still queued, then, only while connected, keeps
sending for up to ``DRAIN_S``; what is left stays in the outbox for the next run.
"""
from __future__ import annotations

import queue
import sqlite3
import threading
import time
from typing import Callable

from device.log import dumps

from .config import MqttConfig
from .connection import Link, stderr_line
from .outbox import Outbox
from .topics import presence, topic

WINDOW = 50             # records in flight (sent, not yet acknowledged)
TICK_S = 0.05           # how long the thread waits for the network or new records per turn
DRAIN_S = 5.0           # at exit, while connected: time to send what is left
OFFLINE_ACK_S = 1.0     # at exit: time to wait for the broker to take the retained 'offline'
MAX_UNSAVED = 10_000    # records held in memory while the outbox cannot be written (disk full)


class Publisher:
    def __init__(self, cfg: MqttConfig, say: Callable[[str], None] = stderr_line,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg, self.say, self.clock = cfg, say, clock
        self.device = cfg.device_id
        self.outbox = Outbox(cfg.outbox, cfg.device_id, int(cfg.outbox_mb * 1_000_000))
        self.status_topic = topic(cfg.broker.prefix, cfg.device_id, "status")
        will = dumps(presence(cfg.device_id, "offline", None, "connection lost")).encode()
        self.link = Link(cfg.broker, f"ferlite-{cfg.device_id}", say=say, will=(self.status_topic, will),
                         retry_note=f", records wait in the outbox {cfg.outbox}",
                         on_ready=self._on_ready, on_ack=self._on_ack, clock=clock)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._handed = 0                      # put() calls (camera loop's thread)
        self._stored = 0                      # of those, now in the outbox (or dropped by its bound)
        self._stored_cv = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._unsaved: list = []
        self._inflight: dict[int, tuple[int, str]] = {}   # message id -> (seq, topic)
        self._presence_mid: int | None = None
        self._presence_acked = False
        self._drain_s = DRAIN_S
        self._sent_upto = 0                   # highest seq published on this connection
        self._acked: list[int] = []
        self.pending = self.outbox.count()    # in the outbox for this device, sent or not
        self.backlog = self.pending           # what earlier runs left
        self.sent = self.dropped = 0

    # -- the camera loop's side ------------------------------------------------------------
    def start(self) -> "Publisher":
        self._thread.start()
        return self

    def put(self, kind: str, record: dict) -> None:
        """Hand a record over; returns at once (the thread stores and sends it)."""
        self._handed += 1
        self._queue.put((kind, record, time.time()))

    def stats(self, wait_s: float = 1.0) -> dict:
        """What the summary reports; waits up to ``wait_s`` for the records handed over to reach the disk."""
        handed = self._handed
        with self._stored_cv:
            self._stored_cv.wait_for(lambda: self._stored >= handed or not self._thread.is_alive(), timeout=wait_s)
        return {"device": self.device, "broker": self.cfg.broker.address, "outbox": self.cfg.outbox,
                "sent": self.sent, "pending": self.pending, "dropped": self.dropped, "backlog": self.backlog,
                "connected": self.link.ready, "errors": self.link.failures, "last_error": self.link.last_error}

    def close(self, drain_s: float = DRAIN_S) -> dict:
        """Stop: store everything, send what the connection allows within ``drain_s``, say goodbye."""
        self._drain_s = drain_s
        self._stop.set()
        self._thread.join(timeout=drain_s + 15.0)  # a connect in progress can take CONNECT_TIMEOUT_S
        if self._thread.is_alive():
            self.say("mqtt: the publisher did not stop in time; unsent records stay in the outbox")
        return self.stats(wait_s=0)

    # -- the publisher thread --------------------------------------------------------------
    def _run(self) -> None:
        deadline = None
        try:
            while True:
                self._store()
                if self._stop.is_set():
                    deadline = deadline or self.clock() + self._drain_s
                    if self._done_sending(deadline):
                        break
                self.link.service(TICK_S, idle=self._stop.wait)
                self._forget_acked()
                if self.link.ready and self.link.client is not None:
                    self._pump()
        except Exception as e:  # noqa: BLE001 - a bug here must not pass silently; the records are on disk
            self.say(f"mqtt: the publisher stopped ({type(e).__name__}: {e}); records stay in {self.cfg.outbox}")
        finally:
            self._finish()

    def _done_sending(self, deadline: float) -> bool:
        if self.pending == 0 and not self._unsaved:
            return True
        if self.clock() >= deadline:
            return True
        # Disconnected and waiting to retry: the rest waits on disk, the exit does not wait on the network.
        return self.link.client is None and self.link.backing_off

    def _store(self) -> None:
        """Queued records -> outbox (one transaction). While the disk refuses, hold them in memory."""
        items = self._unsaved
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not items:
            return
        try:
            dropped = self.outbox.add(items)
        except sqlite3.Error as e:
            if len(items) > MAX_UNSAVED:
                self.dropped += len(items) - MAX_UNSAVED
                del items[:len(items) - MAX_UNSAVED]
            self.say(f"mqtt: cannot write the outbox {self.cfg.outbox} ({e}); {len(items)} records held in memory")
            self._unsaved = items
            self._count_stored(len(items))
            return
        self.dropped += dropped
        self.pending = self.outbox.count()
        self._unsaved = []
        self._count_stored(len(items))

    def _count_stored(self, n: int) -> None:
        with self._stored_cv:
            self._stored += n
            self._stored_cv.notify_all()

    def _on_ready(self, link: Link) -> None:
        """CONNACK said yes: announce 'online' (retained) and resend from the oldest unacknowledged record."""
        self._inflight.clear()
        self._acked.clear()
        self._sent_upto = 0
        self._presence_acked = False
        self._presence_mid = link.publish(self.status_topic, dumps(presence(self.device, "online", time.time())).encode(),
                                          retain=True)

    def _on_ack(self, mid: int, reason) -> None:
        seq, name = self._inflight.pop(mid, (None, self.status_topic))
        if reason.is_failure:
            self.link.refused(reason, name)
            return
        if seq is not None:
            self._acked.append(seq)
        elif mid == self._presence_mid:
            self._presence_acked = True
        self.link.confirmed()

    def _forget_acked(self) -> None:
        if self._acked:
            self.outbox.remove(self._acked)
            self.sent += len(self._acked)
            self.pending = self.outbox.count()
            self._acked = []
        if self.link.client is None:   # the connection broke: what was in flight goes again next time
            self._inflight.clear()

    def _pump(self) -> None:
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return
        for row in self.outbox.pending(after=self._sent_upto, limit=room):
            name = topic(self.cfg.broker.prefix, self.device, row.kind)
            mid = self.link.publish(name, row.payload)
            if mid is None:
                return
            self._inflight[mid] = (row.seq, name)
            self._sent_upto = row.seq

    def _finish(self) -> None:
        """Store the last records, say 'offline' (retained) when connected, close the connection and the file."""
        try:
            self._store()
            link = self.link
            if link.ready and link.client is not None:
                mid = link.publish(self.status_topic, dumps(presence(self.device, "offline", time.time(),
                                                                   "stopped")).encode(), retain=True)
                self._presence_mid, self._presence_acked = mid, False
                until = self.clock() + OFFLINE_ACK_S
                while mid is not None and not self._presence_acked and self.clock() < until \
                        and link.client is not None and not link.broken:
                    link.client.loop(timeout=TICK_S)
                self._forget_acked()
            link.drop()
        finally:
            self.outbox.close()
            self._count_stored(0)
