"""Atomic file writes: a file either holds its old content or its whole new one.

Every artefact in ferlite (models, metadata, reports, logs' final summaries) is
written to a temporary file in the same folder and renamed into place, so a crash
or Ctrl-C never leaves a half-written file that looks finished.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from .provenance import jsonable


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    ``suffix`` defaults to the target's own suffix, since some writers (Keras, OpenCV)
    choose the format from the file name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 files; artefacts are meant to be copied and shared (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> Path:
    # ``jsonable``: numpy scalars and arrays, paths, dataclasses: everything a config or report holds.
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=jsonable) + "\n")
