"""Records name run folders relative to a runs root (device/paths.py), and no tracked file holds a
machine's own absolute path: a clone on another machine (or a Pi the installer copies
device/models/ onto) must read the same records."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from device.paths import REPO, portable, portable_record, portable_text, resolve_run, runs_root, runs_root_at

MACHINE_PATH = re.compile(r"(?<![\w.~$}/:-])/(root|home|tmp)/")
# A scratch folder a script makes at run time on the machine that runs it (not a record of a machine).
SCRATCH = {"scripts/gpu/train.sh": "/tmp/site"}


def test_tracked_files_hold_no_machine_paths():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    found = []
    for name in (f.decode() for f in files if f):
        path = REPO / name
        if name.startswith("tests/") or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary: a model, an image
        allowed = SCRATCH.get(name, "\0")
        found += [f"{name}:{i}: {line.strip()[:120]}" for i, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1)
                  if any(not line.startswith(allowed, m.start()) for m in MACHINE_PATH.finditer(line))]
    assert not found, "absolute machine paths (name runs as runs/NAME, see device/paths.py):\n" + "\n".join(found[:40])


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "ferlite-runs"
    (root / "vgg").mkdir(parents=True)
    monkeypatch.setenv("FERLITE_RUNS", str(root))
    return root


def test_portable_names_runs_under_the_runs_root(runs):
    assert portable(runs / "vgg") == "runs/vgg" and portable(runs / "vgg" / "flip-tta") == "runs/vgg/flip-tta"
    assert portable(REPO / "device" / "models" / "default") == "device/models/default" and portable(REPO) == "."
    assert portable(REPO.parent / "shared" / "data" / "x.csv") == "../shared/data/x.csv"
    assert portable("runs/vgg") == "runs/vgg"  # relative: as typed
    assert portable("/elsewhere/x") == "/elsewhere/x"  # outside every root: as given, for the rule above to catch


def test_portable_text_and_records(runs):
    cmd = f"python -m train --teacher {runs}/t/model_int8.tflite --out={runs / 'vgg'} --note https://x.org/a"
    assert portable_text(cmd) == "python -m train --teacher runs/t/model_int8.tflite --out=runs/vgg --note https://x.org/a"
    rec = {"run": {"dir": str(runs / "vgg"), "members": [str(runs / "b")]}, "n": 3, "cwd": str(REPO)}
    assert portable_record(rec) == {"run": {"dir": "runs/vgg", "members": ["runs/b"]}, "n": 3, "cwd": "."}


def test_resolve_run_reads_old_and_new_records(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_run("runs/vgg") == runs / "vgg"  # a new record
    assert resolve_run(str(runs / "vgg")) == runs / "vgg"  # an old one
    (tmp_path / "runs" / "vgg").mkdir(parents=True)
    assert resolve_run("runs/vgg") == Path("runs/vgg")  # a runs/ folder where the command runs comes first


def test_runs_root_at_sets_the_root_for_a_block_only(tmp_path, monkeypatch):
    monkeypatch.delenv("FERLITE_RUNS", raising=False)
    with runs_root_at(tmp_path):
        assert portable(tmp_path / "vgg") == "runs/vgg"
    assert portable(tmp_path / "vgg") == str(tmp_path / "vgg") and runs_root() == REPO / "runs"
    with runs_root_at(None):
        assert runs_root() == REPO / "runs"
