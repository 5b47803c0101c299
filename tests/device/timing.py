"""How long the device tests wait for a child process: hang guards, not speed limits.

Under emulation (scripts/release/check_aarch64.sh runs tests/device on an aarch64 Python through
qemu-user, 10-20x slower, often beside other work) every child process is that much slower
to start and run, so the script sets FERLITE_TEST_TIMEOUT_SCALE and each guard stretches by
it; on a real machine the factor is 1 and the guards are what they say.
"""
from __future__ import annotations

import os

TIMEOUT_SCALE = float(os.environ.get("FERLITE_TEST_TIMEOUT_SCALE") or 1)


def patient(seconds: float) -> float:
    """A hang guard of ``seconds`` on a real machine, scaled under emulation."""
    return seconds * TIMEOUT_SCALE
