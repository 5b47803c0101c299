"""--max-fps: at most N frames a second, so a kiosk or car Pi does only the work it needs.

A camera gives 30 fps, but an expression changes over hundreds of milliseconds: 5-10 classified
frames a second are plenty for the modes' alerts, and the cores (and the Pi's temperature) stay
free. On a file source it plays the clip at that pace, like a camera (scripts/release/soak.py uses it).
A late frame is not made up for with a burst: the next slot is counted from now.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional


class Pacer:
    def __init__(self, max_fps: Optional[float], stop: Optional[threading.Event] = None,
                 clock: Callable[[], float] = time.perf_counter):
        if max_fps is not None and max_fps <= 0:
            raise ValueError("max_fps must be > 0")
        self.period = 1.0 / max_fps if max_fps else 0.0
        self.stop = stop or threading.Event()
        self.clock = clock
        self.next_at: Optional[float] = None
        self.waited = 0.0  # seconds spent waiting (idle, not a stage of the loop)

    def wait(self) -> None:
        """Return when the next frame may start (at once without a limit, or on a stop request)."""
        if not self.period:
            return
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            self.stop.wait(self.next_at - now)  # a stop request wakes it early
            woke = self.clock()
            self.waited += woke - now
            now = max(woke, self.next_at)
        self.next_at = now + self.period
