"""SIGINT / SIGTERM as a flag to finish on: the camera loop and the fleet consumer end cleanly (exit 0)."""
from __future__ import annotations

import contextlib
import signal
import threading


class StopFlag(threading.Event):
    """Set by SIGINT / SIGTERM; ``reason`` names the signal. The loop finishes its frame and its summary."""
    reason = None


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT / SIGTERM set the yielded ``StopFlag`` instead of killing the process; restored on exit."""
    stop = StopFlag()

    def handler(signum, frame):
        stop.reason = signal.Signals(signum).name
        stop.set()
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
