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
