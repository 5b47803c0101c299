"""docs/RESULTS.md's "Field benchmark": what ``python -m convert field --json`` and ``python -m convert crops
--json`` recorded in docs/field/: each model's clean accuracy and its drop under every camera condition
(moderate / strong), its worst drop, and the loop's crops of the composited detection set per margin."""
from __future__ import annotations

from pathlib import Path

from convert.field import CONDITIONS, LEVELS

from .collect import read_json, recorded
from .selection import cpu
from .text import pct, table

FIELD = "field"  # beside the records folder, like docs/selection
TITLES = {"low_light": "low light", "dark_noise": "dark + noise", "washed_out": "washed out",
          "gaussian_blur": "blur", "motion_blur": "motion blur", "small_face": "small face", "jpeg": "JPEG",
          "rotation": "tilt", "loose_crop": "loose crop"}


def drop(row: dict, cond: str) -> str:
    c = row["conditions"].get(cond) or {}
    return " / ".join(f"{100 * (c[lv] - row['clean']):+.1f}" if lv in c else "?" for lv in LEVELS)


def model_rows(doc: dict) -> list[list[str]]:
    return [[f"`{r['name']}`", f"{r['split']} ({r['n']})", pct(r["clean"], 1),
             *(drop(r, c) for c in CONDITIONS),
             " / ".join(f"-{r['worst_drop_pp'][lv]:.1f}" for lv in LEVELS)] for r in doc["models"]]


def crop_rows(doc: dict) -> list[list[str]]:
    rows = []
    for src, by_margin in doc["table"].items():
        for margin, r in by_margin.items():
            conds = [k for k in r if k not in ("n", "all")]
            rows.append([f"`{doc['model']}`", src, margin, str(r["n"]), pct(r.get("all"), 1),
                         ", ".join(f"{c} {pct(r[c], 1)}" for c in conds)])
    return rows


def about(path: Path, doc: dict) -> str:
    prov = recorded(doc)
    return f"`{path.name}`: `{prov.get('command', '?')}` ({cpu(prov.get('machine'))}, {str(prov.get('date', '?'))[:10]})"


def field_section(records: Path) -> list[str]:
    folder = records.parent / FIELD
    docs = [(p, d) for p in sorted(folder.glob("*.json")) for d in [read_json(p)[0]] if d]
    benches = [(p, d) for p, d in docs if isinstance(d.get("models"), list)]
    crops = [(p, d) for p, d in docs if isinstance(d.get("table"), dict)]
    if not docs:
        return []
    header = ["model", "split (faces)", "clean", *(TITLES[c] for c in CONDITIONS), "worst"]
    lines = ["## Field benchmark", "",
             "The same faces as a camera in a car or a kiosk sees them (`convert/field.py`): each condition at a "
             "moderate / strong level, as the drop in accuracy points from the clean faces; worst = the largest drop "
             "at each level. Converted files run by LiteRT as the Pi runs them (the `fer` peer: its Keras model). "
             "Each model is scored on its own labels (the FER+ model on FER+ majority votes).", ""]
    for path, doc in benches:
        lines += [about(path, doc), ""] + table(header, model_rows(doc)) + [""]
    if crops:
        lines += ["### The loop's crops of the composited detection set", "",
                  "PublicTest faces (`test`) or Training faces (`calib`, where the margin is chosen) pasted into "
                  "640x480 frames under four lighting conditions (docs/DETECTORS.md), cut by `contract.crop_face` "
                  "around the true box or each detector's box, with each margin.", ""]
        for path, doc in crops:
            lines += [about(path, doc) + f", frames: `{doc.get('split', 'test')}`", ""]
            lines += table(["model", "boxes", "margin", "faces", "accuracy", "by lighting"], crop_rows(doc)) + [""]
    return lines
