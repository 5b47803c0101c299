"""Stderr for humans: a simple progress bar, and a way to keep TensorFlow's C++ chatter out of it.

TensorFlow and the TFLite converter print to file descriptor 2 from C++ (oneDNN
banners, absl pre-init warnings, "fully_quantize: ..."), which Python's logging
cannot silence. ``captured_stderr`` points fd 2 at a temporary file for the
duration of a block and hands the text back (so a failed conversion can still
show the converter's own message), while progress bars keep writing to a
duplicate of the original stderr taken before any redirection.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time

_stream = None


def stream():
    """A text stream on the process's real stderr, unaffected by ``captured_stderr``."""
    global _stream
    if _stream is None:
        try:
            sys.stderr.flush()
            _stream = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
        except (OSError, ValueError):
            _stream = sys.stderr
    return _stream


class Captured:
    text: str = ""


@contextlib.contextmanager
def captured_stderr():
    """Send fd 2 (C++ logging included) to a temporary file inside the block; ``.text`` holds it after."""
    stream()  # take the duplicate before redirecting
    cap = Captured()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield cap
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield cap
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            cap.text = tmp.read().decode("utf-8", "replace")


class Progress:
    """``desc [#####.....] 120/300 3.1s`` on stderr; redrawn in place on a terminal, a few lines otherwise."""

    def __init__(self, total: int, desc: str, enabled: bool = True, width: int = 30):
        self.total, self.desc, self.enabled, self.width = max(int(total), 0), desc, enabled, width
        self.done = 0
        self.start = time.monotonic()
        self._tty = enabled and hasattr(stream(), "isatty") and stream().isatty()
        self._last_step = -1
        self._closed = False

    def __call__(self, n: int = 1) -> None:
        self.update(n)

    def update(self, n: int = 1) -> None:
        self.done = min(self.done + int(n), self.total) if self.total else self.done + int(n)
        if not self.enabled:
            return
        if self._tty:  # redraw in place, at most every 1%
            step = int(100 * self.done / self.total) if self.total else 0
            if step != self._last_step:
                self._last_step = step
                self._draw(end="\r")

    def _draw(self, end: str) -> None:
        frac = self.done / self.total if self.total else 1.0
        fill = int(round(frac * self.width))
        line = (f"{self.desc} [{'#' * fill}{'.' * (self.width - fill)}] "
                f"{self.done}/{self.total} {time.monotonic() - self.start:.1f}s")
        stream().write(line + end)
        stream().flush()

    def close(self) -> None:
        if self.enabled and not self._closed:  # a log file gets one line per bar, when it is done
            self._draw(end="\n")
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def info(msg: str, enabled: bool = True) -> None:
    if enabled:
        stream().write(msg + "\n")
        stream().flush()
