"""What a Raspberry Pi 4 / 5 / 3 / Zero 2 W should take per stage, ESTIMATED from published measurements
(no Pi ran this): a thin entry point to ``python -m device.pi_speed``, where the estimate and its cited
sources live.

    python scripts/docs/pi_speed_estimate.py [--model device/models/default/model_int8.tflite]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from device.errors import exit_with, run_click  # noqa: E402
from device.pi_speed import cli  # noqa: E402

if __name__ == "__main__":
    exit_with(run_click(cli, prog_name="python scripts/docs/pi_speed_estimate.py"))
