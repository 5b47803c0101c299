"""Scoring and the conversion report (report.json, report.md, confusion PNGs, eval_faces.npz).

Every model is scored by ``device.metrics.evaluate`` on the same faces: the Keras
model through a thin predict function, every ``.tflite`` through
``device.interpreter.TFLiteClassifier`` (the code the Pi runs). ``build_report`` assembles
report.json's dict; ``render_markdown`` turns it into report.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from device import contract, provenance
from device.atomic import atomic_path, write_json, write_text
from device.interpreter import TFLiteClassifier
from device.macs import format_macs
from device.metadata import METADATA_NAME
from device.paths import portable_record
from device.metrics import agreement, evaluate

FORMAT = "ferlite-convert-report/1"
DEFAULT_EVAL_FACES = 500
RUN_CONFIG_KEYS = ("data", "split", "seed", "val_fraction", "model", "labels", "ferplus", "label_scheme")  # as the report repeats it

# Why an op may be left in float in an int8 graph, for the report.
FLOAT_OP_REASONS = {
    "SQUARE": "TFLite's SQUARE kernel has no int8 version. keras.ops.normalize (x * min(rsqrt(sum(square(x))), 1/eps)) "
              "does not match the converter's L2-normalisation pattern, so SQUARE stays as its own op and is run in "
              "float between a DEQUANTIZE and a QUANTIZE. Writing the layer as "
              "x * rsqrt(maximum(sum(square(x), -1, keepdims=True), eps)) fuses into the builtin "
              "L2_NORMALIZATION op, which has an int8 kernel.",
    "DEQUANTIZE": "turns int8 back into float32 for the next op, which has no int8 kernel",
    "QUANTIZE": "turns float32 back into int8 after an op that ran in float",
}


def keras_predict(model, batch_size: int = 256) -> Callable[[np.ndarray], np.ndarray]:
    """faces (N, 48, 48) uint8 -> probabilities, the Keras model called in inference mode."""
    def predict(faces):
        return np.asarray(model(contract.as_batch(faces), training=False), np.float32)
    return predict


def score(predict, faces, labels, class_names: Sequence[str], progress=None) -> tuple[dict, np.ndarray]:
    """``device.metrics.evaluate`` with the probabilities split off (JSON-ready metrics, probs)."""
    result = evaluate(predict, faces, labels, class_names=class_names, progress=progress)
    probs = result.pop("probs")
    return result, probs


def classifier(path, threads: int | None = None) -> TFLiteClassifier:
    """``device.interpreter.TFLiteClassifier`` with LiteRT's C++ banner kept off the console."""
    from .console import captured_stderr
    with captured_stderr():
        clf = TFLiteClassifier(path, threads=threads)
        clf.predict(np.zeros((1, *contract.INPUT_SHAPE[:2]), np.uint8))  # delegates are applied on first use
    return clf


def score_tflite(path, faces, labels, class_names, threads: int | None = None, progress=None):
    clf = classifier(path, threads=threads)
    return score(lambda f: clf.predict(f), faces, labels, class_names, progress)


def drop_pp(ref: dict, other: dict) -> dict:
    """Percentage-point drop from ``ref`` to ``other``: accuracy, macro-F1 and per-class recall (positive = worse)."""
    return {
        "accuracy_pp": round(100 * (ref["accuracy"] - other["accuracy"]), 3),
        "macro_f1_pp": round(100 * (ref["macro_f1"] - other["macro_f1"]), 3),
        "per_class_recall_pp": {name: round(100 * (ref["per_class"][name]["recall"] - other["per_class"][name]["recall"]), 3)
                                for name in ref["per_class"]},
    }


def compare(probs_ref: np.ndarray, probs_other: np.ndarray) -> dict:
    """``device.metrics.agreement`` plus the largest single |delta p|."""
    out = agreement(probs_ref, probs_other)
    out["max_abs_prob_delta"] = float(np.abs(probs_ref - probs_other).max()) if len(probs_ref) else 0.0
    return out


def comparisons(name: str, m: dict, probs: np.ndarray, models: dict, all_probs: dict) -> dict:
    """Target ``name`` (metrics ``m``, probabilities ``probs``) against Keras, and against float32 unless it is float32."""
    out = {"drop_vs_keras": drop_pp(models["keras"], m), "vs_keras": compare(all_probs["keras"], probs)}
    if name != "float32":
        out.update(drop_vs_float32=drop_pp(models["float32"], m), vs_float32=compare(all_probs["float32"], probs))
    return out


def int8_checks(m: dict) -> tuple[dict, list[str]]:
    """What the device relies on in the int8 file (int8 in and out, scale 1 / zero-point -128), and notes when not."""
    io = m["io"]
    checks = {
        "input_int8": io["input"]["dtype"] == "int8", "output_int8": io["output"]["dtype"] == "int8",
        "input_scale_1_zero_point_minus_128": io["input"]["scale"] == 1.0 and io["input"]["zero_point"] == -128,
        "builtin_ops_only": True,  # TFLITE_BUILTINS_INT8 only: the converter refuses anything else
    }
    notes = []
    if not checks["input_scale_1_zero_point_minus_128"]:
        notes.append(f"int8 input quantization is scale {io['input']['scale']:g}, zero-point "
                     f"{io['input']['zero_point']} (not 1.0/-128): the device wrapper uses its slower path")
    fl = m["graph"]["float_ops"]
    if fl:
        notes.append("int8 graph is not integer end to end: " + ", ".join(o["op"] for o in fl) + " run in float")
    return checks, notes


def drop_gate(models: dict, max_drop: float | None) -> dict | None:
    """``--max-drop``: the int8 accuracy drop against float32, in percentage points, and whether it passes."""
    if max_drop is None:
        return None
    drop = models["int8"]["drop_vs_float32"]["accuracy_pp"]
    return {"max_drop_pp": float(max_drop), "drop_pp": drop, "against": "float32", "passed": drop <= max_drop}


def versions() -> dict:
    """The converter's package versions, under report.json's keys (from ``device.provenance.versions``)."""
    v = provenance.versions()
    found = {"tensorflow": v.get("tensorflow-cpu") or v.get("tensorflow"), "keras": v.get("keras"),
             "ai_edge_litert": v.get("ai-edge-litert"), "numpy": v.get("numpy")}
    return {k: x for k, x in found.items() if x}


def build_report(*, run_dir, out_dir, meta: dict, cfg: dict, flip_tta: bool, members=(), evaluation: dict, calibration,
                 models: dict, temperature: dict | None = None, gate: dict | None, notes: list[str], files, provenance_record: dict | None) -> dict:
    """report.json's dict: what was converted, on which faces, every model's scores, and what ran."""
    return {
        "format": FORMAT,
        "date": provenance.now_iso(),
        "machine": provenance.machine_info(),
        "versions": versions(),
        "run": {"dir": str(run_dir), "model": meta.get("model"), "flip_tta": bool(flip_tta),
                "members": [str(m) for m in members],
                "config": {k: cfg.get(k) for k in RUN_CONFIG_KEYS if k in cfg}},
        "out_dir": str(out_dir),
        "evaluation": evaluation,
        "calibration": calibration,
        "temperature": temperature,  # convert.temperature: the softmax temperature baked into the files
        "models": models,
        "gate": gate,
        "notes": notes,
        "files": sorted({METADATA_NAME, *files, "report.json", "report.md"}),
        "provenance": provenance_record,
    }


def summary(r: dict, report_md) -> str:
    """A few lines for the console: size, accuracy, drop and latency per model, and where report.md is."""
    lines = []
    for name, m in r["models"].items():
        size = f"{m['size_bytes'] / 1024:8.1f} KiB"
        lat = " ".join(f"{x['median_ms']:.2f}ms@{x['threads']}t" for x in m.get("latency", []))
        extra = ""
        if "drop_vs_float32" in m:
            extra = (f" drop {m['drop_vs_float32']['accuracy_pp']:+.2f}pp vs float32,"
                     f" agreement {100 * m['vs_float32']['top1_agreement']:.1f}%")
        lines.append(f"{name:8s} {size}  acc {100 * m['accuracy']:6.2f}%  F1 {100 * m['macro_f1']:6.2f}%{extra}  {lat}")
    if "int8" in r["models"]:
        fl = r["models"]["int8"]["graph"]["float_ops"]
        lines.append("int8 float ops: " + (", ".join(o["op"] for o in fl) if fl else "none (int8 end to end)"))
    lines.append(f"report: {report_md}")
    return "\n".join(lines)


def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` indices, seeded, taking classes in turn (round robin) so rare classes are kept."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < n:
        for pool in pools:
            if pool and len(chosen) < n:
                chosen.append(int(pool.pop()))
    return np.sort(np.asarray(chosen, np.int64))


def write_eval_faces(path, faces: np.ndarray, labels: np.ndarray, split_name: str,
                     label_names: Sequence[str], n: int = DEFAULT_EVAL_FACES, seed: int = 0) -> Path:
    """``eval_faces.npz`` for ``device/run.py bench``: labelled evaluation faces, no TensorFlow needed to read."""
    idx = stratified_indices(labels, n, seed)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would otherwise append its own suffix
            np.savez_compressed(f, faces=np.asarray(faces)[idx].astype(np.uint8),
                                labels=np.asarray(labels)[idx].astype(np.int64),
                                split=np.asarray(str(split_name)), label_names=np.asarray(list(label_names)))
    return path


def plot_reliability_splits(out_dir, models: dict, uncalibrated: dict | None, test_name: str) -> dict[str, Path]:
    """reliability_val.png and reliability_test.png: every model's curve, with the uncalibrated Keras one."""
    out = {}
    for split in ("val", "test"):
        curves = {name: m["reliability"][split] for name, m in models.items() if split in m.get("reliability", {})}
        if uncalibrated and split in uncalibrated:
            curves = {"keras uncalibrated": uncalibrated[split], **curves}
        if curves:
            shown = "val" if split == "val" else test_name
            out[split] = plot_reliability(curves, Path(out_dir) / f"reliability_{split}.png",
                                          f"reliability on {shown} (n={next(iter(curves.values()))['n']})")
    return out


def plot_reliability(curves: dict[str, dict], path, title: str) -> Path:
    """Accuracy against mean confidence per non-empty bin, one line per model, and the diagonal."""
    from train.report import plt  # matplotlib with the Agg backend, as training's plots
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":", label="perfect")
    for name, rel in curves.items():
        pts = [(b["confidence"], b["accuracy"]) for b in rel["bins"] if b["n"]]
        ax.plot(*zip(*pts), marker="o", ms=3, ls="--" if "uncalibrated" in name else "-",
                label=f"{name} (ECE {rel['ece']:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-1, mean per bin)", ylabel="accuracy", title=title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion(cm, labels: Sequence[str], path, title: str) -> Path:
    """A row-normalised confusion matrix with counts, as a PNG: the same plot training writes."""
    from train.report import plot_confusion as plot
    return plot(path, cm, title, labels)


# --- markdown -----------------------------------------------------------------------------

def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _pp(x) -> str:
    return "n/a" if x is None else f"{x:+.2f}"


def _size(n) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _wrapping(run: dict) -> list[str]:
    """report.md's lines on what the converted file wraps around the run's model (mirror image, other members)."""
    out = [f"- ensemble: the mean of this run's model and `{'`, `'.join(run['members'])}`"] if run.get("members") else []
    return out + (["- flip TTA: each model also sees the face's mirror image; all probabilities averaged in the file"]
                  if run.get("flip_tta") else [])


def _macs_lines(r: dict) -> list[str]:
    """report.md's cost per face in multiply-accumulates (device.macs): the same on every machine."""
    rows = [(n, m["macs"]) for n, m in r["models"].items() if m.get("macs")]
    if not rows:
        return []
    out = ["## Multiply-accumulates per face (every pass the file runs, batch 1)", "",
           "| model | MACs per face | by op |", "| --- | --- | --- |"]
    out += [f"| {n} | {format_macs(c['per_face'])} ({c['per_face']:,}) | "
            + ", ".join(f"{op} {format_macs(v)}" for op, v in c["by_op"].items()) + " |" for n, c in rows]
    return out + [""]


def render_markdown(r: dict) -> str:
    """report.md from report.json's dict."""
    ev = r["evaluation"]
    names = list(r["models"])
    out = [f"# ferlite conversion report: {r['run']['model']}", "",
           f"- run: `{r['run']['dir']}`", *_wrapping(r['run']), f"- output: `{r['out_dir']}`",
           f"- date: {r['date']}", f"- machine: {r['machine']['platform']} ({r['machine']['cpu_count']} CPUs, "
           f"{r['machine']['hostname']})", f"- TensorFlow {r['versions'].get('tensorflow')}, "
           f"Keras {r['versions'].get('keras')}, LiteRT {r['versions'].get('ai_edge_litert')}", "",
           f"Evaluation: {ev['n']} faces of `{ev['split']}` (split `{ev['split_kind']}`"
           + (f", capped by --eval-limit {ev['limit']}" if ev.get("limit") else "") + f"), data `{ev['data']}`.", ""]
    cal = r.get("calibration")
    if cal:
        out += [f"Calibration: {cal['n']} seeded (seed {cal['seed']}) shuffled faces of the training split, "
                f"pixels {cal['pixel_min']}..{cal['pixel_max']} (mean {cal['pixel_mean']:.1f}), "
                f"median neighbour-pixel correlation {cal['median_neighbour_correlation']:.2f}.", ""]
    for note in r.get("notes", []):
        out.append(f"> note: {note}")
    if r.get("notes"):
        out.append("")

    out += ["## Accuracy", "", "| model | file | size | accuracy | macro-F1 | drop vs Keras (pp) | drop vs float32 (pp) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in names:
        m = r["models"][name]
        out.append(f"| {name} | {m.get('file') or '-'} | {_size(m['size_bytes']) if m.get('size_bytes') else '-'} | "
                   f"{_pct(m['accuracy'])} | {_pct(m['macro_f1'])} | "
                   f"{_pp(m.get('drop_vs_keras', {}).get('accuracy_pp'))} | "
                   f"{_pp(m.get('drop_vs_float32', {}).get('accuracy_pp'))} |")
    out.append("")

    if "int8" in r["models"]:
        i8 = r["models"]["int8"]
        d = i8["drop_vs_float32"]
        out += ["## int8 against float32", "",
                f"- accuracy drop: {_pp(d['accuracy_pp'])} pp, macro-F1 drop: {_pp(d['macro_f1_pp'])} pp "
                f"(drop vs Keras: {_pp(i8['drop_vs_keras']['accuracy_pp'])} pp)",
                f"- top-1 agreement: {_pct(i8['vs_float32']['top1_agreement'])}, mean |delta p|: "
                f"{i8['vs_float32']['mean_abs_prob_delta']:.4f}, max |delta p|: {i8['vs_float32']['max_abs_prob_delta']:.4f}",
                f"- input: {i8['io']['input']['dtype']} scale {i8['io']['input']['scale']:g} zero-point "
                f"{i8['io']['input']['zero_point']}" + (" (uint8 pixels map to it by flipping the top bit)"
                                                        if i8['io']['input']['scale'] == 1.0
                                                        and i8['io']['input']['zero_point'] == -128 else ""),
                f"- output: {i8['io']['output']['dtype']} scale {i8['io']['output']['scale']:g} zero-point "
                f"{i8['io']['output']['zero_point']}", "",
                "Per-class recall drop (pp, int8 vs float32; positive = worse):", "",
                "| class | " + " | ".join(d["per_class_recall_pp"]) + " |",
                "| --- |" + " --- |" * len(d["per_class_recall_pp"]),
                "| drop | " + " | ".join(_pp(v) for v in d["per_class_recall_pp"].values()) + " |", ""]
        gate = r.get("gate")
        if gate:
            out += [f"Gate --max-drop {gate['max_drop_pp']} pp: **{'PASS' if gate['passed'] else 'FAIL'}** "
                    f"(drop {gate['drop_pp']:+.2f} pp).", ""]

    out += ["## Latency (batch 1, median after warm-up, through device.interpreter)", "",
            "| model | threads | median ms | p90 ms | fps |", "| --- | --- | --- | --- | --- |"]
    for name in names:
        for lat in r["models"][name].get("latency", []):
            out.append(f"| {name} | {lat['threads']} | {lat['median_ms']:.3f} | {lat['p90_ms']:.3f} | {lat['fps']} |")
    out.append("")

    out += _macs_lines(r)
    out += ["## Ops that run in float", ""]
    for name in names:
        g = r["models"][name].get("graph")
        if not g:
            continue
        fl = g["float_ops"]
        if name == "int8":
            if not fl:
                out.append(f"- **int8**: none. No op of the {g['n_ops']} reads or writes a float tensor: integer end to end (int8 activations), suits integer-only NPUs.")
            else:
                out.append(f"- **int8**: {len(fl)} of {g['n_ops']} ops still run in float:")
                for op in fl:
                    reason = FLOAT_OP_REASONS.get(op["op"], "no int8 kernel for this op in TFLite builtins")
                    out.append(f"  - #{op['index']} {op['op']} ({', '.join(op['dtypes'])}): {reason}")
        else:
            out.append(f"- {name}: {g['n_float_ops']} of {g['n_ops']} ops touch float32 tensors "
                       f"({'activations are float in this target' if g['n_float_ops'] else 'none'}).")
    out.append("")
    if "int8" in r["models"] and r["models"]["int8"].get("graph"):
        counts = r["models"]["int8"]["graph"]["op_counts"]
        out += ["int8 graph ops: " + ", ".join(f"{k} x{v}" for k, v in counts.items()), ""]
        shape_ops = r["models"]["int8"]["graph"].get("shape_ops") or []
        if shape_ops:
            out += [f"Shape arithmetic on int32 tensors ({', '.join(shape_ops)}): computes the batch size for a "
                    "reshape (Flatten on a dynamic batch). Integer, not float; an integer-only NPU delegate may "
                    "leave these few scalar ops on the CPU.", ""]

    out += _calibration_lines(r)
    pngs = [(n, r["models"][n]["confusion_png"]) for n in names if r["models"][n].get("confusion_png")]
    if pngs:
        out += ["## Confusion matrices", ""] + [f"![{n}]({p})" for n, p in pngs] + [""]
    out += ["Files: " + ", ".join(f"`{f}`" for f in r.get("files", [])), ""]
    return "\n".join(out)


def _ece(rel: dict | None) -> str:
    return "-" if not rel else f"{rel['ece']:.4f} (conf {rel['mean_confidence']:.3f}, acc {rel['accuracy']:.3f})"


def _calibration_lines(r: dict) -> list[str]:
    """report.md's calibration section: the temperature, and ECE per model and split."""
    t = r.get("temperature") or {}
    if "n" not in t:
        return []
    if t.get("calibrated"):
        cv = t.get("cv_nll") or {}
        head = [f"Temperature {t['temperature']} ({t['method']}; fitted on {t['n']} validation faces by NLL of "
                f"what the file outputs: {t['nll_before']:.4f} -> {t['nll_after']:.4f}), folded into the final "
                "softmax layer of the exported files."
                + (f" Held-out NLL (2-fold on val): scalar {cv['scalar']:.4f}, per-class {cv['per_class']:.4f}."
                   if cv else "")]
    else:
        head = ["Not calibrated (--no-calibrate): the files output the model's own softmax."]
    rows = ([("keras uncalibrated", t["keras_uncalibrated"])] if t.get("keras_uncalibrated") else []) + \
        [(n, m.get("reliability", {})) for n, m in r["models"].items()]
    test = r["evaluation"]["split"]
    out = ["## Calibration (expected calibration error, 10 bins, top-1)", "", *head, "",
           f"| model | ECE val | ECE {test} |", "| --- | --- | --- |"]
    out += [f"| {n} | {_ece(rel.get('val'))} | {_ece(rel.get('test'))} |" for n, rel in rows]
    pngs = [f"![reliability {s}](reliability_{s}.png)" for s in ("val", "test")
            if f"reliability_{s}.png" in r.get("files", [])]
    return out + [""] + ([*pngs, ""] if pngs else [])


def write_report(out_dir, report: dict) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    report = portable_record(report)  # run folders as runs/NAME: reports are committed and shipped (device/paths.py)
    md = write_text(out_dir / "report.md", render_markdown(report))
    js = write_json(out_dir / "report.json", report)  # last: its presence marks a finished conversion
    return js, md
