"""The on-disk outbox: every fleet record is stored here first and deleted only once the broker acked it.

SQLite from the standard library, one file per device (several devices may share one: rows and
counters are keyed by device id). Records get their sequence number here, so numbers keep
counting across runs; the file also holds a random ``stream`` id, so a new outbox (a wiped SD
card) starts a count a consumer does not mistake for duplicates.

Bounded on disk: when the pages the file uses pass ``max_bytes``, the device's oldest records
go first (a few more than strictly needed: pages free up whole), and the count of dropped
records is kept (per run by the caller, in total here). Freed pages are reused, so the file
stays at about the bound; the write-ahead log beside it is checkpointed every ``WAL_PAGES``
pages and cut back to ``WAL_BYTES`` after that. Commits are synchronous (WAL,
synchronous=FULL): a Pi in a vehicle is usually switched off by cutting its power, and a
record the loop handed over must survive that.

Used from one thread at a time (the publisher's); opened on the caller's thread so a bad path
fails before the camera starts.
"""
from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from typing import Iterable, NamedTuple

from device.errors import InputError
from device.log import FILE_MODE, dumps

from .topics import envelope

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device   TEXT PRIMARY KEY,
    stream   TEXT NOT NULL,
    next_seq INTEGER NOT NULL,
    dropped  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    device  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;
"""
TRIM_BATCH = 16              # oldest rows dropped per step while the file is over its bound
WAL_PAGES, WAL_BYTES = 128, 500_000


class Row(NamedTuple):
    seq: int
    kind: str
    payload: bytes


class OutboxError(InputError):
    """The outbox file cannot be opened or is not an outbox."""


class Outbox:
    def __init__(self, path: str | Path, device_id: str, max_bytes: int):
        self.path, self.device, self.max_bytes = Path(path), device_id, int(max_bytes)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Made here, not by SQLite (0644 less the umask): its -wal and -shm files take this file's mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
            self.db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            self.db.execute(f"PRAGMA journal_size_limit={WAL_BYTES}")
            self.db.executescript(SCHEMA)
            self.stream = self._stream()
            self.page_size = int(self.db.execute("PRAGMA page_size").fetchone()[0])
        except (OSError, sqlite3.Error) as e:
            raise OutboxError(f"--mqtt-outbox: cannot use {self.path} as the outbox: {e}") from None

    def _scalar(self, sql: str, *args) -> int:
        return int(self.db.execute(sql, (self.device, *args)).fetchone()[0])

    def _stream(self) -> str:
        with self._transaction():
            row = self.db.execute("SELECT stream FROM devices WHERE device=?", (self.device,)).fetchone()
            if row:
                return row[0]
            stream = uuid.uuid4().hex[:12]
            self.db.execute("INSERT INTO devices (device, stream, next_seq) VALUES (?, ?, 1)", (self.device, stream))
            return stream

    def _transaction(self):
        return _Transaction(self.db)

    def add(self, records: Iterable[tuple[str, dict, float]]) -> int:
        """Store (kind, record, time) in order, numbered from the device's counter. -> records dropped to fit."""
        with self._transaction():
            seq = self._scalar("SELECT next_seq FROM devices WHERE device=?")
            for kind, record, time_s in records:
                payload = dumps(envelope(self.device, self.stream, seq, time_s, record)).encode()
                self.db.execute("INSERT INTO outbox (device, seq, kind, payload) VALUES (?, ?, ?, ?)",
                                (self.device, seq, kind, payload))
                seq += 1
            self.db.execute("UPDATE devices SET next_seq=? WHERE device=?", (seq, self.device))
            return self._trim()

    def used_bytes(self) -> int:
        """Bytes of the file's pages in use (free pages, which new rows reuse, not counted)."""
        pages = int(self.db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self.db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self.page_size

    def _trim(self) -> int:
        """Drop the device's oldest rows until the file fits ``max_bytes`` (inside add's transaction)."""
        dropped = 0
        while self.used_bytes() > self.max_bytes:
            n = self.db.execute("DELETE FROM outbox WHERE device=? AND seq IN (SELECT seq FROM outbox WHERE device=? "
                                "ORDER BY seq LIMIT ?)", (self.device, self.device, TRIM_BATCH)).rowcount
            if n <= 0:
                break
            dropped += n
        if dropped:
            self.db.execute("UPDATE devices SET dropped=dropped+? WHERE device=?", (dropped, self.device))
        return dropped

    def pending(self, after: int = 0, limit: int = 100) -> list[Row]:
        """The oldest stored records with ``seq > after``, in order."""
        rows = self.db.execute("SELECT seq, kind, payload FROM outbox WHERE device=? AND seq>? ORDER BY seq LIMIT ?",
                               (self.device, after, limit)).fetchall()
        return [Row(int(s), k, bytes(p)) for s, k, p in rows]

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget records the broker acknowledged."""
        seqs = [(self.device, s) for s in seqs]
        if not seqs:
            return
        with self._transaction():
            self.db.executemany("DELETE FROM outbox WHERE device=? AND seq=?", seqs)

    def count(self) -> int:
        return self._scalar("SELECT COUNT(*) FROM outbox WHERE device=?")

    def dropped_total(self) -> int:
        return self._scalar("SELECT dropped FROM devices WHERE device=?")

    def next_seq(self) -> int:
        return self._scalar("SELECT next_seq FROM devices WHERE device=?")

    def close(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave one self-contained file behind
        except sqlite3.Error:
            pass
        self.db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on an exception): one writer at a time, even across processes."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
