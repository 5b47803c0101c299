"""README's models table is the Pareto record's (``python -m convert pareto --readme``), not figures typed
twice: after a model is shipped and ``python -m convert pareto`` rerun, the README table is pasted from it."""
import json
from pathlib import Path

from convert.results.pareto import RECORD, readme_table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_models_table_is_the_pareto_records():
    table = [line for line in readme_table(json.loads((ROOT / RECORD).read_text())) if line.startswith("|")]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n".join(table) in readme, "README's models table differs: paste `python -m convert pareto --readme`"


def test_every_shipped_model_is_in_the_pareto_record():
    doc = json.loads((ROOT / RECORD).read_text())
    recorded = {r["name"] for r in doc["models"] if r.get("kind") == "shipped"}
    shipped = {p.parent.name for p in (ROOT / "device" / "models").glob("*/model_int8.tflite")}
    assert recorded == shipped, "rerun `python -m convert pareto` after shipping or removing a model"
