"""JSON Lines output: one JSON object per line, each written whole and flushed at once.

A reader tailing the log (or a crash, or Ctrl-C) never sees half a record: every line goes
out in one ``write`` followed by ``flush``; the summary is the last line, written at exit.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import IO, Optional

from .provenance import jsonable


def dumps(obj) -> str:
    # ``jsonable`` only sees what json cannot write itself (numpy values, paths): cheap per frame.
    return json.dumps(obj, separators=(",", ":"), default=jsonable)


class JsonlWriter:
    """Write records to ``path`` (created or truncated) or, when ``path`` is None, to ``stream`` (stdout)."""

    def __init__(self, path: str | Path | None = None, stream: Optional[IO[str]] = None):
        self.path = Path(path) if path else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "w", encoding="utf-8")
            self._owned = True
        else:
            self._f = stream if stream is not None else sys.stdout
            self._owned = False
        self.lines = 0

    def write(self, record: dict) -> None:
        self._f.write(dumps(record) + "\n")
        self._f.flush()
        self.lines += 1

    def close(self) -> None:
        if self._owned and not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NullWriter:
    """Discards records (benchmarks)."""
    lines = 0

    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what C++ libraries print on file descriptor 2 inside the block (LiteRT's
    "INFO: Created TensorFlow Lite XNNPACK delegate"), so stderr holds only our own lines.
    Python exceptions raised inside still propagate with their messages."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured stderr (pytest, CliRunner): nothing to do
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, fd)
    finally:
        os.close(saved)
