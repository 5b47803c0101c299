"""The log writer with telemetry: every record goes to the JSONL log, fleet records also to the publisher.

It wraps the loop's writer, so the loop is unchanged: the same records, in the same order, reach
the log and the broker. The summary gains an ``mqtt`` block (sent, pending, dropped, ...) before
it is written, so the log says what the fleet got.
"""
from __future__ import annotations

from typing import Callable

from .config import MqttConfig, credentials_warning
from .connection import stderr_line
from .publisher import Publisher
from .topics import kind_of


class TelemetryWriter:
    def __init__(self, writer, cfg: MqttConfig, say: Callable[[str], None] = stderr_line):
        self.writer, self.cfg, self.say = writer, cfg, say
        warning = credentials_warning(cfg.broker.credentials)
        if warning:
            say(warning)
        self.publisher = Publisher(cfg, say=say).start()
        if self.publisher.backlog:
            say(f"mqtt: {self.publisher.backlog} records from an earlier run wait in {cfg.outbox}; sending them first")

    @property
    def lines(self) -> int:
        return self.writer.lines

    def write(self, record: dict) -> None:
        if record.get("type") == "summary":
            record["mqtt"] = self.publisher.stats()   # the loop's own summary dict: the caller sees it too
        self.writer.write(record)
        kind = kind_of(record, self.cfg.frames)
        if kind:
            self.publisher.put(kind, record)

    def close(self) -> None:
        final = self.publisher.close()
        if final["pending"]:
            self.say(f"mqtt: {final['pending']} records not yet acknowledged stay in {self.cfg.outbox}; "
                     "the next run with --mqtt sends them")
        if final["dropped"]:
            self.say(f"mqtt: the outbox was full: {final['dropped']} oldest records were dropped "
                     f"(bound {self.cfg.outbox_mb:g} MB, --mqtt-outbox-mb)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
