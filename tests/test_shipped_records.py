"""The committed cross-check records describe the models that are shipped now, not ones they replaced."""
import json
from pathlib import Path

import pytest

from device.provenance import file_sha256

ROOT = Path(__file__).resolve().parents[1]
CHECKS = sorted((ROOT / "docs" / "runs" / "ferplus_crosscheck").glob("*.json"))


@pytest.mark.parametrize("path", CHECKS, ids=[p.stem for p in CHECKS])
def test_crosscheck_record_is_of_the_shipped_bytes(path):
    doc = json.loads(path.read_text())
    model = ROOT / doc["model"]
    if not doc["model"].startswith("device/models/"):
        pytest.skip(f"{doc['model']} is not a shipped model")
    assert model.is_file(), f"{path.name}: {doc['model']} is not in the repository"
    assert doc.get("model_sha256") == file_sha256(model), (
        f"{path.name} scored other bytes than {doc['model']}: rerun {doc['provenance']['command']}")



SHIPPED = sorted(p.parent for p in (ROOT / "device" / "models").glob("*/README.md") if (p.parent / "report.md").is_file())


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_readme_and_report_regenerate_from_the_committed_records(folder, monkeypatch):
    """A shipped model's README.md and report.md (copied onto every Pi) are what ``python -m convert ship
    RUN ... --readme-only`` and convert's report make from the run's records in docs/runs: the records are
    the one source, and neither holds a path of the machine that made it."""
    import shlex

    from convert.pipeline import wrapped_dir
    from convert.report import render_markdown
    from convert.ship import MAX_BYTES, readme

    monkeypatch.chdir(ROOT)
    text = (folder / "README.md").read_text(encoding="utf-8")
    remake = next(line for line in text.splitlines() if line.startswith("python -m convert ship "))
    args = shlex.split(remake.split("#")[0])[4:]  # RUN [--flip-tta] [--member RUN2 ...] [--dest DIR] [--max-bytes N]
    opt = dict(zip(args, args[1:]))
    members = [Path(a) for prev, a in zip(args, args[1:]) if prev == "--member"]
    run, flip = ROOT / "docs" / "runs" / Path(args[0]).name, "--flip-tta" in args
    report = json.loads((run / (wrapped_dir(flip, len(members)) or ".") / "report.json").read_text())
    assert (folder / "report.md").read_text(encoding="utf-8") == render_markdown(report)
    assert text == readme(run, flip, members, Path(opt.get("--dest", "device/models/default")),
                          int(opt.get("--max-bytes", MAX_BYTES)))


def test_a_recovered_runs_replaced_source_points_at_the_committed_old_file():
    """A run recovered from a shipped file that was later replaced: the remake names the commit holding the
    old bytes; while the file is unchanged, nothing is added."""
    from convert.ship import replaced_source

    model = "device/models/ferplus/model_int8.tflite"
    assert replaced_source({"model": model, "sha256": file_sha256(ROOT / model)}) == []
    old = json.loads((ROOT / "docs" / "runs" / "ferplus-keras" / "config.json").read_text())["recovered_from"]
    (line,) = replaced_source(old)
    commit = line.split("committed in ")[1].split(":")[0]
    import subprocess
    blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:{model}"], capture_output=True, check=True).stdout
    import hashlib
    assert hashlib.sha256(blob).hexdigest() == old["sha256"]
