"""Keep C++ chatter off stderr (``quiet_native_stderr`` drops it, ``captured_stderr`` keeps it).

TensorFlow and LiteRT print to file descriptor 2 from C++ (oneDNN banners, absl pre-init warnings,
"fully_quantize: ...", XNNPACK notices), which Python's logging cannot silence, and which would
turn a one-line error into five. Why it lives here, in the import-light base: train/ and convert/
both need it and both import device/, never each other. Standard library only.

``captured_stderr`` points fd 2 at a temporary file for the duration of a block and hands the text
back (so a failed import or conversion can still show its own message); ``stream()`` is a duplicate
of the original stderr, taken before any redirection, for progress bars that must still reach the user.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile

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
