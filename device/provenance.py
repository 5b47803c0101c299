"""What ran: the command line, the resolved options, package versions, machine and date.

train (config.json), convert (report.json) and bench (bench.json) each store ``record(...)`` beside
their artefacts, so docs/RESULTS.md shows the recorded command instead of reconstructing it
(nanoGPT saves its config inside the checkpoint for the same reason). numpy-free and TF-free.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
import platform
import shlex
import sys
from importlib import metadata as _md
from pathlib import Path

from .paths import portable_record  # records name runs as runs/NAME, never this machine's own paths

PACKAGES = ("numpy", "opencv-python-headless", "click", "ai-edge-litert", "tflite-runtime",
            "tensorflow", "tensorflow-cpu", "keras", "jax", "torch")


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """The file's fingerprint: which data, model or teacher a record speaks of."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def machine_info() -> dict:
    return {"hostname": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
            "processor": _cpu_model() or platform.processor() or None, "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def _cpu_model() -> str | None:
    """x86: "model name"; a Raspberry Pi: "Model" (the board) or "Hardware"; None elsewhere."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    except OSError:
        return None
    fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
    for key in ("model name", "model", "hardware"):
        if fields.get(key) and not fields[key].isdigit():
            return fields[key]
    return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def versions(packages=PACKAGES) -> dict:
    """Installed versions of the packages that matter, the ones not installed left out."""
    out = {}
    for p in packages:
        try:
            out[p] = _md.version(p)
        except _md.PackageNotFoundError:
            pass
    return out


def command_line(prog: str, argv=None) -> str:
    """The command as a user would retype it: ``prog`` then the arguments, shell-quoted."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([prog] + [shlex.quote(str(a)) for a in args])


def record(prog: str, argv=None, options=None) -> dict:
    """The provenance block every stage stores: command, argv, options, versions, machine, date."""
    args = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    ran = portable_record({"command": command_line(prog, args), "argv": args, "cwd": os.getcwd(),
                           "options": jsonable(options or {})})
    return {**ran, "versions": versions(), "machine": machine_info(), "date": now_iso()}


def jsonable(o):
    """Plain JSON types for dataclasses, paths, tuples, sets and numpy scalars/arrays (duck-typed)."""
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return jsonable(dataclasses.asdict(o))
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [jsonable(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):      # numpy arrays and scalars, without importing numpy
        return o.tolist()
    if isinstance(o, float) and o != o:
        return None               # NaN is not JSON
    return o
