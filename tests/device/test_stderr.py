"""device/stderr.py: C++ chatter written straight to fd 2 is caught, the real stderr comes back after."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import os, sys
from device.stderr import captured_stderr, stream
with captured_stderr() as cap:
    os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\\n")  # as C++ writes it, past Python
    stream().write("progress still shows\\n"); stream().flush()
print("caught:", cap.text.strip())
sys.stderr.write("error: one line\\n")
"""


def test_fd2_is_caught_inside_the_block_and_restored_after():
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "caught: I0000 port.cc:153] oneDNN custom operations are on"
    assert p.stderr.splitlines() == ["progress still shows", "error: one line"]
