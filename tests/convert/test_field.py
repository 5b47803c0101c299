"""The field benchmark (convert/field.py, python -m convert field): every condition degrades the faces
reproducibly, the strong level more than the moderate one, and the scores are the shared evaluate's."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convert.field import CONDITIONS, LEVELS, degrade, field_scores

ROOT = Path(__file__).resolve().parents[2]


def faces(n=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:48]
    base = 128 + 80 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    return np.clip(base[None] + rng.normal(0, 10, (n, 48, 48)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_each_condition_is_reproducible_and_strong_is_worse(condition):
    x = faces()
    moderate, strong = (degrade(x, condition, lv) for lv in LEVELS)
    assert moderate.dtype == np.uint8 and moderate.shape == x.shape
    assert np.array_equal(moderate, degrade(x, condition, "moderate"))  # same faces for every model
    diff = [np.abs(d.astype(float) - x).mean() for d in (moderate, strong)]
    assert 0 < diff[0] < diff[1], diff


def test_unknown_condition_or_level_is_refused():
    with pytest.raises(ValueError, match="unknown condition"):
        degrade(faces(2), "fog", "moderate")
    with pytest.raises(ValueError, match="unknown level"):
        degrade(faces(2), "jpeg", "extreme")


def test_field_scores_measure_drops_from_clean():
    """A classifier that reads brightness: perfect on clean faces, fooled by low light, so the worst
    moderate drop is low light's, and it is what the table says."""
    x = faces(40)
    x[20:] = np.clip(x[20:].astype(int) + 60, 0, 255).astype(np.uint8)
    labels = np.array([0] * 20 + [1] * 20)
    threshold = (x[:20].mean() + x[20:].mean()) / 2

    def predict(f):
        bright = f.reshape(len(f), -1).mean(1) > threshold
        return np.stack([~bright, bright], 1).astype(np.float32)

    r = field_scores(predict, x, labels, class_names=("dark", "bright"))
    assert r["clean"] == 1.0 and r["n"] == 40
    assert r["conditions"]["low_light"]["strong"] == 0.5
    assert r["worst_drop_pp"]["strong"] == 50.0


@pytest.mark.slow
def test_cli_scores_a_converted_model_on_validation_faces(converted, tmp_path):
    """Named as records name a run (runs/NAME), found under the runs root, and recorded that way."""
    out = tmp_path / "field.json"
    folder = converted.paths["int8"].parent
    env = {**os.environ, "FERLITE_RUNS": str(folder.parent), "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "convert", "field", f"runs/{folder.name}", "--split", "val",
                        "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    row = doc["models"][0]
    assert (row["name"], row["model"]) == (f"runs/{folder.name}", f"runs/{folder.name}/model_int8.tflite")
    assert row["split"] == "validation" and set(row["conditions"]) == set(CONDITIONS)
    assert "python -m convert field" in doc["provenance"]["command"]


def test_cli_missing_model_is_one_error_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "convert", "field", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("error:"), p.stderr
