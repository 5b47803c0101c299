"""Stderr for humans: a simple progress bar and info lines, written to ``device.stderr.stream()`` so
they reach the user while ``captured_stderr`` keeps TensorFlow's C++ chatter out of it."""
from __future__ import annotations

import time

from device.stderr import Captured, captured_stderr, stream  # noqa: F401  (convert's users import them from here)


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
