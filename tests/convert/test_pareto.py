"""python -m convert pareto's record, plot, RESULTS.md section and README rows, on the real shipped default
(in git) and the real sample faces: no TensorFlow, seconds. The full bench (every model on all of PublicTest)
is what ``python -m convert pareto`` runs; here its parts run on 200 faces."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from convert import pareto
from convert.cli import main as convert_main
from convert.results.pareto import pareto_section, readme_table
from device.interpreter import TFLiteClassifier
from device.metadata import read_metadata
from device.provenance import record

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INT8 = ROOT / "device" / "models" / "default" / "model_int8.tflite"
SHIPPED_DEFAULT_CLEAN = 0.6831986625801059  # the default's PublicTest accuracy in docs/field/shipped.json


@pytest.fixture(scope="module")
def doc(sample_csv) -> dict:
    """A record as ``pareto.run`` builds it, of the real default file scored on 200 real sample faces."""
    from train.data import load_fer2013
    ds = load_fer2013(sample_csv)
    faces, labels = ds.faces[:200], ds.labels[:200]
    clf = TFLiteClassifier(DEFAULT_INT8, threads=1)
    meta = read_metadata(DEFAULT_INT8)
    row = {"name": "default", "kind": "shipped", "labels": pareto.label_text(meta), "n_labels": 7, "split": "sample",
           **pareto.scores(lambda f: clf.predict_batched(f, 64), faces, labels, clf.labels),
           "params": meta["params"], "params_source": "metadata.json",
           **pareto.file_facts(DEFAULT_INT8, clf, faces[0], warmup=2, runs=5),
           "field": pareto.recorded_field(pareto.FIELD_DIR, "device/models/default/model_int8.tflite", "PublicTest",
                                          None)}
    # a costlier, less accurate model with the same labels (the default's figures, moved): off the front
    worse = {**row, "name": "worse", "accuracy": row["accuracy"] - 0.05, "macs": row["macs"] * 2}
    rows = [row, worse]
    prov = record(pareto.PROG, [], None)
    return {"format": "ferlite-pareto/1", "models": rows, "front": pareto.front(rows),
            "machine_text": pareto.machine_text(prov["machine"]), "date": prov["date"][:10],
            "plot": "docs/pareto.png", "provenance": prov}


def test_the_record_measures_the_real_file(doc):
    r = doc["models"][0]
    assert r["labels"] == "FER2013, 7" and r["n"] == 200 and 0.3 < r["accuracy"] <= 1 and 0 < r["macro_f1"] <= 1
    assert r["macs"] == 235_032_064 and r["arithmetic"] == "int8" and r["params"] == 1_242_919
    assert r["size_bytes"] == DEFAULT_INT8.stat().st_size and r["model"] == "device/models/default/model_int8.tflite"
    assert r["latency"]["median_ms"] > 0 and r["latency"]["runs"] == 5 and r["latency"]["threads"] == 1
    assert r["pi_ms"]["pi4"] == pytest.approx([29.74, 53.27], abs=0.01)
    assert r["pi_ms"]["pi3"] == pytest.approx([57.00, 131.62], abs=0.01)
    assert doc["front"] == ["default"]
    json.dumps(doc)  # plain JSON


def test_field_drops_come_from_the_matching_record():
    path = "device/models/default/model_int8.tflite"
    f = pareto.recorded_field(pareto.FIELD_DIR, path, "PublicTest", SHIPPED_DEFAULT_CLEAN)
    assert f["worst_drop_pp"] == {"moderate": 10.84, "strong": 24.74} and f["source"] == "docs/field/shipped.json"
    assert f["dark_noise_pp"]["moderate"] == pytest.approx(5.07, abs=0.01)
    assert pareto.recorded_field(pareto.FIELD_DIR, path, "PublicTest", 0.5) is None  # another file at that path
    val = pareto.recorded_field(pareto.FIELD_DIR, path, "validation", None)  # the default weighed against candidates
    assert val is None or val["source"].startswith("docs/field/val-")     # never the PublicTest record
    assert pareto.recorded_field(pareto.FIELD_DIR, path, "random80-test", None) is None
    peer = pareto.recorded_field(pareto.FIELD_DIR, "fer 25.10.3 mini-Xception", "PublicTest", None)
    assert peer["worst_drop_pp"]["moderate"] == 25.41 and "Keras" in peer["scored"]


def test_shipped_models_are_discovered(tmp_path):
    found = pareto.shipped_models()
    assert DEFAULT_INT8 in found and all(p.name == "model_int8.tflite" for p in found)
    assert not [p for p in found if p.parent.name == "blazeface"]
    (tmp_path / "fast").mkdir()
    (tmp_path / "empty").mkdir()
    shutil.copy(DEFAULT_INT8, tmp_path / "fast" / "model_int8.tflite")
    assert pareto.shipped_models(tmp_path) == [tmp_path / "fast" / "model_int8.tflite"]


def test_results_section_readme_rows_and_plot(doc, tmp_path, capsys):
    record_path = tmp_path / "docs" / "pareto" / "pareto.json"
    record_path.parent.mkdir(parents=True)
    record_path.write_text(json.dumps(doc))
    lines = pareto_section(tmp_path / "docs" / "runs")
    assert lines[0] == "## Pareto: accuracy against cost" and "`python -m convert pareto`" in lines[2]
    row = next(x for x in lines if x.startswith("| `default` |"))
    assert "| 235.0 M | 1,242,919 | 1.25 MiB |" in row and "| -10.8 / -24.7 | 30-53 / 10-27 / 57-132 | yes |" in row
    assert next(x for x in lines if x.startswith("| `worse` |")).endswith("| no |")
    assert "![accuracy against MACs per face](pareto.png)" in lines
    assert pareto_section(tmp_path / "elsewhere" / "runs") == []  # no record: no section

    readme = readme_table(doc)
    assert readme[2].startswith("| `default` (`device/models/default/`) | FER2013, 7 | ")
    assert "-10.8 / -24.7 points (dark cabin -5.1) | 235.0 M | 1.25 MiB |" in readme[2]
    assert convert_main(["pareto", "--readme", "--json", str(record_path)]) == 0
    assert capsys.readouterr().out.splitlines() == readme
    assert convert_main(["pareto", "--readme", "--json", str(tmp_path / "none.json")]) == 3

    png = pareto.plot(doc, tmp_path / "pareto.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
