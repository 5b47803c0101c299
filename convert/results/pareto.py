"""docs/RESULTS.md's "Pareto" section and README's models-table rows, from the record ``python -m convert
pareto`` wrote (docs/pareto/pareto.json): the shipped models and the `fer` peer, accuracy against cost,
measured in one bench run, with the Pi estimates of device/pi_speed.py. No generation time: the same
record gives the same text."""
from __future__ import annotations

from pathlib import Path

from .collect import read_json
from .text import pct, size, table

RECORD = "docs/pareto/pareto.json"  # beside the records folder (docs/runs), like docs/field
PLOT = "docs/pareto.png"
BOARDS = (("pi4", "Pi 4"), ("pi5", "Pi 5"), ("pi3", "Pi 3 / Zero 2 W"))
LEVELS = ("moderate", "strong")


def macs_text(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e7 else f"{n / 1e6:.2f} M"


def span(lo: float, hi: float) -> str:
    """device.pi_speed.span, repeated here so the renderer loads no interpreter: '30-53', '4.2-9.4'."""
    return f"{lo:.0f}-{hi:.0f}" if hi >= 10 else f"{lo:.1f}-{hi:.1f}"


def pi_text(r: dict, boards=BOARDS) -> str:
    return " / ".join(span(*r["pi_ms"][b]) for b, _ in boards)


def worst(r: dict) -> str:
    f = r.get("field") or {}
    return " / ".join(f"-{f['worst_drop_pp'][lv]:.1f}" for lv in LEVELS) if f.get("worst_drop_pp") else "not run"


def dark(r: dict) -> str:
    f = r.get("field") or {}
    return f"-{f['dark_noise_pp']['moderate']:.1f}" if f.get("dark_noise_pp") else "not run"


def title(r: dict) -> str:
    return f"`{r['name']}`" + (f" ({r['title']}, not shipped)" if r.get("kind") == "peer" else "")


def machine_date(doc: dict) -> str:
    return f"{doc.get('machine_text', '?')}, {doc.get('date', '?')}"


def rows(doc: dict) -> list[list[str]]:
    on_front = set(doc.get("front") or [])
    return [[title(r), r["labels"], f"{pct(r['accuracy'])} (n={r['n']:,})", pct(r["macro_f1"]), macs_text(r["macs"]),
             f"{r['params']:,}" if isinstance(r.get("params"), int) else "?", size(r["size_bytes"]),
             f"{r['latency']['median_ms']:.2f} ms", worst(r), pi_text(r), "yes" if r["name"] in on_front else "no"]
            for r in doc["models"]]


def field_sources(doc: dict) -> str:
    by: dict[str, list[str]] = {}
    for r in doc["models"]:
        f = r.get("field") or {}
        src = f.get("source", "none")
        key = f"`{src}`" + (" (its Keras model)" if r.get("kind") == "peer" else "")
        by.setdefault(key, []).append(f"`{r['name']}`")
    return "; ".join(f"{', '.join(names)}: {src}" for src, names in by.items())


def pareto_section(records: Path) -> list[str]:
    """The section, or nothing when no record is there (a clean checkout before the first bench)."""
    path = records.parent / Path(RECORD).relative_to("docs")
    doc = read_json(path)[0] if path.is_file() else None
    if not doc or not isinstance(doc.get("models"), list):
        return []
    prov = doc.get("provenance") or {}
    plot = doc.get("plot")
    splits = dict.fromkeys(f"{r['labels']} labels on {r['split']} (n={r['n']:,})" for r in doc["models"])
    lines = ["## Pareto: accuracy against cost", "",
             f"`{path.name}`: `{prov.get('command', '?')}` ({machine_date(doc)}). One bench run of every shipped "
             "model (each folder of `device/models/` with a `model_int8.tflite`) and the `fer` package's model (its "
             "own TFLite file). Accuracy and macro-F1 by `device.metrics.evaluate`, each model on its own labels and "
             f"held-out faces ({'; '.join(splits)}): FER+ majority labels are not FER2013's, so the FER+ model's "
             "accuracy is not comparable with the others. MACs: multiply-accumulates per face, every pass the file "
             "runs (`device/macs.py`: a flip-TTA file counts the face and its mirror). Parameters: the Keras model's. "
             "ms here: batch 1, median of the timed runs after warm-up, 1 thread, on the machine named, with a "
             "training run beside it (compare within this table only). Field: the worst drop in points at the "
             f"moderate / strong level ([Field benchmark](#field-benchmark)); from {field_sources(doc)}. Pi: "
             "**estimates**, ms per face on 1 thread on a Pi 4 / Pi 5 / Pi 3 or Zero 2 W, published XNNPACK "
             "MobileNet timings scaled by MACs (`device/pi_speed.py`; [INSTALL_PI.md](INSTALL_PI.md), \"Pi speed "
             "(estimates)\"). Pareto front: no model with the same labels is as accurate for as few MACs.", ""]
    lines += table(["model", "labels", "accuracy", "macro-F1", "MACs per face", "parameters", "size",
                    "ms per face here", "field: worst drop", "Pi 4 / Pi 5 / Pi 3 ms (est.)", "Pareto front"], rows(doc))
    if plot:
        lines += ["", f"![accuracy against MACs per face]({Path(plot).relative_to('docs')})"]
    return lines + [""]


def readme_table(doc: dict) -> list[str]:
    """README's "Shipped models" table from the record: one row per shipped model (the peer left out)."""
    header = ["model", "labels", "int8 accuracy", "in the field: worst drop, moderate / strong", "MACs per face",
              "size", "speed here (1 thread)", "Pi 4 / Pi 5 / Pi 3 ms per face (estimates)"]
    body = [[f"`{r['name']}` (`device/models/{r['name']}/`)", r["labels"],
             f"{pct(r['accuracy'])} on {r['split']} (n={r['n']:,}; macro-F1 {pct(r['macro_f1'])})",
             f"{worst(r)} points (dark cabin {dark(r)})", macs_text(r["macs"]), size(r["size_bytes"]),
             f"{r['latency']['median_ms']:.2f} ms per face", pi_text(r)]
            for r in doc["models"] if r.get("kind") == "shipped"]
    note = (f"`python -m convert pareto` ({machine_date(doc)}); the field drops from "
            f"{field_sources({'models': [r for r in doc['models'] if r.get('kind') == 'shipped']})}.")
    return table(header, body) + ["", note]
