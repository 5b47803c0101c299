"""``run.py bench``: int8 against float32 on labelled faces, model-only latency, loop fps on a clip.

Either model alone, and no labelled faces, also work: a Pi with only the shipped int8 default can
measure its latency and loop speed.

Accuracy and agreement come from ``device.metrics`` (the same scoring as training and
conversion). Latency is batch 1, the median after warm-up, per thread count. End-to-end fps
is the whole camera loop (decode, face detection, crop, classify, smoothing, records) on a clip,
with the runtime's detector (``--detector``, run.py's default unless told otherwise).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .contract import INPUT_SHAPE
from .detect import DEFAULT_DETECTOR, IoUTracker, make_detector
from .errors import InputError
from .interpreter import TFLiteClassifier
from .log import NullWriter
from .macs import MacsUnavailable, describe, macs_record
from .stderr import quiet_native_stderr
from .loop import STAGES, Loop
from .metrics import agreement, evaluate
from .modes import KioskAggregator
from .reliability import reliability
from .sources import VideoSource


class BenchError(InputError):
    """The labelled faces file is missing or not in the eval_faces.npz format."""


def load_eval_faces(path: str | Path) -> dict:
    """eval_faces.npz: ``faces`` uint8 (N, 48, 48), ``labels`` int (N,), ``split`` str, ``label_names``."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"labelled faces not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:
        raise BenchError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    missing = [k for k in ("faces", "labels") if k not in data]
    if missing:
        raise BenchError(f"{path}: missing key(s) {missing} (expected faces, labels, split, label_names)")
    faces, labels = data["faces"], data["labels"].astype(np.int64)
    if faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
    if faces.dtype != np.uint8 or faces.shape[1:] != INPUT_SHAPE[:2] or len(faces) != len(labels) or not len(faces):
        raise BenchError(f"{path}: faces must be uint8 (N, 48, 48) with N labels, got {faces.dtype} "
                         f"{faces.shape} and {labels.shape}")
    split = str(data["split"]) if "split" in data else ""
    names = [str(s) for s in data["label_names"]] if "label_names" in data else None
    return {"faces": faces, "labels": labels, "split": split, "label_names": names}


def model_latency(clf: TFLiteClassifier, face: np.ndarray, warmup: int = 10, runs: int = 100) -> dict:
    """Batch-1 ``predict`` (quantize, invoke, dequantize): median and p90 in ms after ``warmup`` calls."""
    x = face[None] if face.ndim == 2 else face[:1]
    for _ in range(warmup):
        clf.predict(x)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        clf.predict(x)
        times[i] = time.perf_counter() - t0
    med = float(np.median(times))
    return {"median_ms": round(med * 1e3, 4), "p90_ms": round(float(np.percentile(times, 90)) * 1e3, 4),
            "fps": round(1.0 / med, 1) if med > 0 else None, "runs": runs}


def loop_fps(clf: TFLiteClassifier, video: str | Path, detect_every: int = 3,
             max_frames: Optional[int] = None, detector=None) -> dict:
    """The whole loop on ``video`` with ``clf`` (records built, nothing written). -> its summary.

    ``detector``: a built detector (``device.detect``) [default: the runtime's, ``DEFAULT_DETECTOR``]."""
    detector = detector or make_detector(DEFAULT_DETECTOR)
    with VideoSource(video) as source:
        loop = Loop(source, detector, IoUTracker(), clf, KioskAggregator(clf.labels), NullWriter(),
                    detect_every=detect_every, max_frames=max_frames, fps_every=0)
        s = loop.run()
    return {"fps": s["fps"], "frames": s["frames"], "faces": s["faces"], "latency_ms": s["latency_ms"]}


def run_bench(float_path, int8_path, faces_path=None, video=None, threads: Sequence[int] = (1,),
              warmup: int = 10, runs: int = 100, detect_every: int = 3, max_frames: Optional[int] = None,
              detector: str = DEFAULT_DETECTOR, log: Callable[[str], None] = lambda s: None) -> dict:
    """Either model may be None (the shipped default is int8 only), and so may the labelled faces: then
    there is no accuracy (nor drop: that needs both models and the faces) and latency runs on a gray face.
    ``detector``: the loop's, by its ``--detector`` name, built as the runtime builds it (its defaults,
    the thread count of the loop)."""
    paths = {k: Path(p) for k, p in (("float32", float_path), ("int8", int8_path)) if p}
    if not paths:
        raise BenchError("nothing to bench: give --int8 and/or --float")
    data = load_eval_faces(faces_path) if faces_path else None
    result: dict = {"models": {k: {"path": str(p)} for k, p in paths.items()}, "threads": list(threads)}
    if data is not None:
        result["faces"] = {"path": str(faces_path), "n": int(len(data["faces"])), "split": data["split"]}
    if video:  # the detectors first: a missing BlazeFace model stops bench before anything is timed
        result["video"], result["detector"] = str(video), detector
        with quiet_native_stderr():  # LiteRT's INFO lines (BlazeFace); a missing model still raises
            detectors = {n: make_detector(detector, threads=n) for n in threads}
    probs = {name: _score(name, path, data, threads[0], faces_path, log, result["models"][name])
             for name, path in paths.items()} if data is not None else {}
    m = result["models"]
    if len(probs) == 2:
        result["accuracy_drop"] = m["float32"]["accuracy"] - m["int8"]["accuracy"]
        result["macro_f1_drop"] = m["float32"]["macro_f1"] - m["int8"]["macro_f1"]
        result["agreement"] = agreement(probs["int8"], probs["float32"])
    face = data["faces"][0] if data is not None else np.full(INPUT_SHAPE[:2], 128, np.uint8)  # latency only
    for name, path in paths.items():
        m[name]["latency"], m[name]["loop"] = {}, {}
        try:  # the cost per face on any machine, beside this one's timings
            m[name]["macs"] = macs_record(path)
        except MacsUnavailable:  # an old tflite_runtime lists no ops: it can still time the model
            pass
        for n in threads:
            with quiet_native_stderr():
                clf = TFLiteClassifier(path, threads=n)
            log(f"latency {name} threads={n}")
            m[name]["latency"][str(n)] = model_latency(clf, face, warmup, runs)
            if video:
                log(f"loop {name} threads={n} on {Path(video).name}")
                m[name]["loop"][str(n)] = loop_fps(clf, video, detect_every, max_frames, detectors[n])
    return result


def _score(name: str, path: Path, data: dict, threads: int, faces_path, log, into: dict) -> np.ndarray:
    """Accuracy of one model on the labelled faces (written into ``into``); returns its probabilities."""
    faces, labels = data["faces"], data["labels"]
    with quiet_native_stderr():
        clf = TFLiteClassifier(path, threads=threads)
    if data["label_names"] is not None and data["label_names"] != clf.labels:
        raise BenchError(f"{faces_path}: label_names {data['label_names']} differ from the model's "
                         f"labels {clf.labels}")
    if labels.min() < 0 or labels.max() >= len(clf.labels):
        raise BenchError(f"{faces_path}: labels outside 0..{len(clf.labels) - 1}, the {len(clf.labels)} "
                         f"labels of {path}")
    log(f"scoring {name} on {len(faces)} faces")
    ev = evaluate(clf.predict, faces, labels, clf.labels, batch_size=64)
    rel = reliability(ev["probs"], labels)  # do its probabilities mean what they say (the modes' thresholds)
    into.update(accuracy=ev["accuracy"], macro_f1=ev["macro_f1"], ece=rel["ece"],
                mean_confidence=rel["mean_confidence"], per_class=ev["per_class"], confusion=ev["confusion"])
    return ev.pop("probs")


def format_table(r: dict) -> str:
    m = r["models"]
    lines = []
    if "faces" in r:
        lines += [f"faces: {r['faces']['n']} ({r['faces']['split'] or 'unnamed split'}) from {r['faces']['path']}",
                  f"{'model':8} {'accuracy':>9} {'macro-F1':>9} {'ECE':>7} {'mean conf':>9}",
                  *(f"{k:8} {m[k]['accuracy']:9.4f} {m[k]['macro_f1']:9.4f} {m[k]['ece']:7.4f} "
                    f"{m[k]['mean_confidence']:9.4f}" for k in m)]
    else:
        lines.append("no labelled faces (--faces): latency and loop speed only")
    if "accuracy_drop" in r:
        lines += [f"drop (float32 - int8): accuracy {r['accuracy_drop']:+.4f}, macro-F1 {r['macro_f1_drop']:+.4f}",
                  f"int8/float32 agreement: top-1 {r['agreement']['top1_agreement']:.4f}, "
                  f"mean |dp| {r['agreement']['mean_abs_prob_delta']:.4f}"]
    lines += ["", f"{'model':8} {'threads':>7} {'median ms':>10} {'model fps':>10} {'loop fps':>9} {'loop ms/frame':>14}"]
    for k in m:
        for n, lat in m[k]["latency"].items():
            loop = m[k]["loop"].get(n)
            lf = f"{loop['fps']:9.1f}" if loop else f"{'-':>9}"
            lm = f"{loop['latency_ms']['per_frame']:14.2f}" if loop else f"{'-':>14}"
            lines.append(f"{k:8} {n:>7} {lat['median_ms']:10.3f} {lat['fps']:10.1f} {lf} {lm}")
    lines += [f"{k} multiply-accumulates per face: {describe(m[k]['macs'])}" for k in m if m[k].get("macs")]
    for k in m:
        for n, loop in m[k]["loop"].items():
            ms = loop["latency_ms"]
            lines.append(f"loop {k} threads={n}, ms per frame: " + ", ".join(f"{s} {ms[s]:.2f}" for s in STAGES)
                         + f"; {r['detector']} detection {ms['detect_per_call']:.2f} ms per call")
    if r.get("video"):
        lines.append(f"loop: {r['video']}, detector {r['detector']}")
    return "\n".join(lines)


def format_header(prov: dict) -> str:
    """What to paste into an issue with the table: the command, the machine (no host name), the packages."""
    m, v = prov["machine"], prov["versions"]
    return "\n".join([f"ferlite bench, {prov['date']}: {prov['command']}",
                      f"machine: {m['processor'] or 'CPU model unknown'}; {m['machine']}, {m['cpu_count']} CPUs; "
                      f"{m['platform']}; Python {m['python']}",
                      "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), ""])
