"""Score the face detectors on the labelled detection set and write docs/DETECTORS.md.

    python scripts/docs/make_detection_set.py       # once: the composited set in .cache/detection_set
    python device/run.py fetch-models               # once, if missing: the BlazeFace models
    python scripts/docs/bench_detectors.py [--set .cache/detection_set] [--doc docs/DETECTORS.md] \\
        [--json runs/bench_detectors.json] [--model device/models/default/model_int8.tflite]

Per detector (Haar at the loop's two detection widths, BlazeFace short and full range):
recall and precision at IoU 0.5 on the composited test frames, recall by face size and by
lighting condition, false positives per frame on faceless frames, recall and precision on the
shared photos and clips (boxes checked by eye, scripts/docs/detection_labels.json) and on a dark,
low-contrast (IR-like) copy of them, milliseconds per call on 320- and 640-pixel-wide frames,
the whole loop's fps on both clips, and the shipped classifier's accuracy on the composited faces
when cropped by each detector. Everything runs on 1 thread (LiteRT and OpenCV).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: the packages are in the repository

import click  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device import blazeface  # noqa: E402
from device.atomic import write_json, write_text  # noqa: E402
from device.bench import loop_fps  # noqa: E402
from device.contract import crop_face  # noqa: E402
from device.detect import BlazeFaceDetector, HaarDetector, iou_matrix  # noqa: E402
from device.interpreter import TFLiteClassifier  # noqa: E402
from device.stderr import quiet_native_stderr  # noqa: E402
from device.provenance import record  # noqa: E402
from device.run import RunOptions  # noqa: E402
from device.detection_set import DEFAULT_OUT, apply_condition, load_set, read_clip  # noqa: E402
from device.paths import shared_data  # noqa: E402

REAL_LABELS = Path(__file__).with_name("detection_labels.json")  # scripts/docs/make_detection_set.py --propose-real

IOU = 0.5
MIN_FACE = 20                       # below the set's smallest face (24 px): nothing true is filtered
LOOP_MIN_FACE = RunOptions.min_face  # timing and loop fps as run.py runs (Haar's cost grows as this shrinks)
SIZE_BINS = (24, 40, 64, 100, 201)  # face side, pixels
CONDITIONS = ("normal", "bright", "dim", "dark_ir")
NEAR = 64                           # driver / kiosk distance: faces at least this big in a 640x480 frame
CLIPS = ("fer_test.mp4", "fer_woman2.mp4")
TIMING_WIDTHS = (320, 640)
DEFAULT_MODEL = ROOT / "device" / "models" / "default" / "model_int8.tflite"
DETECTORS = {  # row name -> (factory taking the smallest face size, what it is)
    "haar-320": (lambda m: HaarDetector(detect_width=320, min_size=m),
                 "OpenCV Haar frontal face on the frame shrunk to 320 px wide (the loop's default for video)"),
    "haar-640": (lambda m: HaarDetector(detect_width=640, min_size=m),
                 "the same on up to 640 px wide (the loop's default for still images)"),
    "blazeface": (lambda m: BlazeFaceDetector(blazeface.SHORT_RANGE, threads=1, min_size=m),
                  "MediaPipe BlazeFace short range, 128x128, whole frame letterboxed"),
    "blazeface-full": (lambda m: BlazeFaceDetector(blazeface.FULL_RANGE, threads=1, min_size=m),
                       "MediaPipe BlazeFace full range, 192x192, whole frame letterboxed"),
}


def match(truth: np.ndarray, found: np.ndarray, thr: float = IOU) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, best IoU first -> [(truth index, found index, IoU)] with IoU >= thr."""
    if not len(truth) or not len(found):
        return []
    iou = iou_matrix(truth, found)
    pairs = []
    while True:
        t, f = np.unravel_index(np.argmax(iou), iou.shape)
        if iou[t, f] < thr:
            return pairs
        pairs.append((int(t), int(f), float(iou[t, f])))
        iou[t, :], iou[:, f] = -1.0, -1.0


def run_frames(detector, frames) -> dict:
    """``frames``: [(gray, truth (T, 4))] -> per-face hit flags, matched boxes, and counts."""
    hits, boxes, ious, fp = [], [], [], 0
    for gray, truth in frames:
        truth = np.asarray(truth, np.float32).reshape(-1, 4)
        found = detector.detect(gray)
        pairs = {t: (f, iou) for t, f, iou in match(truth, found)}
        for t in range(len(truth)):
            hits.append(t in pairs)
            boxes.append(found[pairs[t][0]] if t in pairs else None)
            ious.append(pairs[t][1] if t in pairs else np.nan)
        fp += len(found) - len(pairs)
    n_found = int(np.sum(hits)) + fp
    return {"hits": np.array(hits, bool), "boxes": boxes, "ious": np.array(ious, float), "fp": fp,
            "frames": len(frames), "recall": float(np.mean(hits)) if hits else None,
            "precision": (float(np.sum(hits)) / n_found) if n_found else None}


def recall_by(hits: np.ndarray, keys: list, values) -> dict:
    keys = np.asarray(keys, dtype=object)
    return {str(v): {"recall": float(hits[keys == v].mean()) if (keys == v).any() else None,
                     "n": int((keys == v).sum())} for v in values}


def size_bin(side: int) -> str:
    for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:]):
        if lo <= side < hi:
            return f"{lo}-{hi - 1}"
    return "other"


def load_real(set_dir: Path) -> tuple[list, list]:
    """The shared photos and the labelled clip frames -> ([(name, gray, truth)], clip frames by name)."""
    labels = json.loads(REAL_LABELS.read_text())
    items = []
    for name, boxes in labels["images"].items():
        img = cv2.imread(str(shared_data("faces", name)), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise click.ClickException(f"cannot read {shared_data('faces', name)}")
        items.append((name, img, boxes))
    for name, clip in labels["clips"].items():
        frames = read_clip(shared_data("faces", name))
        for i, boxes in clip["boxes"].items():
            items.append((f"{name}#{i}", cv2.cvtColor(frames[int(i)], cv2.COLOR_BGR2GRAY), boxes))
    return items


def interleaved_ms(detectors: dict, frames: dict[int, list[np.ndarray]], reps: int) -> dict:
    """Median ms per ``detect`` call per detector and frame width. The detectors take turns, pass by
    pass, so a change in the machine's background load falls on all of them alike."""
    times: dict = {(n, w): [] for n in detectors for w in frames}
    for det in detectors.values():          # warm-up: first calls allocate
        for grays in frames.values():
            for g in grays[:3]:
                det.detect(g)
    for _ in range(reps):
        for n, det in detectors.items():
            for w, grays in frames.items():
                for g in grays:
                    t = time.perf_counter()
                    det.detect(g)
                    times[n, w].append(time.perf_counter() - t)
    return {n: {str(w): float(np.median(times[n, w]) * 1e3) for w in frames} for n in detectors}


def raw_geometry(spec: blazeface.BlazeFaceSpec, frames) -> dict:
    """BlazeFace's own boxes against the truth on ``frames`` (the calib split): the medians that
    ``box_shift`` and ``box_scale`` are set from."""
    det = BlazeFaceDetector(spec, threads=1, min_size=0)
    rows = []
    for gray, truth in frames:
        xyxy, _ = det.detect_scored(gray)
        raw = np.c_[xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]]
        truth = np.asarray(truth, np.float32).reshape(-1, 4)
        for t, f, _ in match(truth, raw, 0.3):
            x, y, w, h = raw[f]
            tx, ty, ts, _ = truth[t]
            rows.append(((tx + ts / 2 - x - w / 2) / w, (y + h / 2 - ty - ts / 2) / w, ts / w))
    r = np.array(rows).reshape(-1, 3)
    med = np.median(r, 0) if len(r) else [np.nan] * 3
    return {"n": len(r), "dx": float(med[0]), "shift_up": float(med[1]), "scale": float(med[2]),
            "spec_shift": spec.box_shift, "spec_scale": spec.box_scale}


def bench(set_dir: Path, model: Path, reps: int, log) -> dict:
    load_start = list(os.getloadavg())
    data = load_set(set_dir)
    frames = data["frames"]
    test = [f for f in frames if f["split"] == "test"]
    empty = [f for f in frames if f["split"] == "empty"]
    calib = [f for f in frames if f["split"] == "calib"]

    def gray_of(f):
        return cv2.imread(str(set_dir / f["file"]), cv2.IMREAD_GRAYSCALE)
    test_frames = [(gray_of(f), [x["box"] for x in f["faces"]]) for f in test]
    empty_frames = [(gray_of(f), []) for f in empty]
    faces = [x for f in test for x in f["faces"]]
    face_frame = [i for i, f in enumerate(test) for _ in f["faces"]]
    sizes = [size_bin(x["size"]) for x in faces]
    conds = [f["condition"] for f in test for _ in f["faces"]]
    near = np.array([x["size"] >= NEAR for x in faces])
    real = load_real(set_dir)
    rng = np.random.default_rng(0)
    real_frames = [(g, b) for _, g, b in real]
    dark_frames = [(apply_condition(g, "dark_ir", rng), b) for g, b in real_frames]
    timing = {w: [cv2.resize(g, (w, w * 3 // 4), interpolation=cv2.INTER_AREA) for g, _ in test_frames[:20]]
              for w in TIMING_WIDTHS}

    with quiet_native_stderr():
        clf = TFLiteClassifier(model, threads=1)
    from train.data import load_fer2013  # numpy + OpenCV only
    fer_path = Path(data.get("fer_path", ""))
    fer = load_fer2013(fer_path) if fer_path.is_file() else None
    if fer is not None and fer.sha256 != data.get("fer_sha256"):
        fer = None  # not the file the set was made from: no 48x48 reference
    labels = np.array([x["label"] for x in faces])
    truth_crops = np.stack([crop_face(test_frames[face_frame[k]][0], x["box"]) for k, x in enumerate(faces)])
    ref = {"truth_box": float((clf.predict_batched(truth_crops).argmax(1) == labels).mean())}
    # The contract's crop adds FACE_MARGIN around the box; FER2013's own framing is the box itself.
    tight = np.stack([crop_face(test_frames[face_frame[k]][0], x["box"], margin=0.0) for k, x in enumerate(faces)])
    ref["truth_box_no_margin"] = float((clf.predict_batched(tight).argmax(1) == labels).mean())
    if fer is not None:
        ref["fer_48x48"] = float((clf.predict_batched(fer.faces[[x["fer_index"] for x in faces]]).argmax(1)
                                  == labels).mean())

    brightness = {c: float(np.median([x["brightness"] for f in test if f["condition"] == c for x in f["faces"]]))
                  for c in CONDITIONS if any(f["condition"] == c for f in test)}
    out = {"set": {"path": str(set_dir), "test_frames": len(test), "test_faces": len(faces),
                   "median_face_brightness": brightness,
                   "empty_frames": len(empty), "calib_frames": len(calib), "real_frames": len(real),
                   "real_faces": int(sum(len(b) for _, _, b in real)), "params": data["params"]},
           "classifier": {"model": str(model), "reference_accuracy": ref}, "detectors": {}}
    for name, (make, about) in DETECTORS.items():
        log(f"{name}: composited test frames")
        det = make(MIN_FACE)
        r = run_frames(det, test_frames)
        e = run_frames(det, empty_frames)
        log(f"{name}: shared photos and clips")
        rr, rd = run_frames(det, real_frames), run_frames(det, dark_frames)
        found = [k for k, b in enumerate(r["boxes"]) if b is not None]
        if found:
            crops = np.stack([crop_face(test_frames[face_frame[k]][0], r["boxes"][k]) for k in found])
            correct = clf.predict_batched(crops).argmax(1) == labels[found]
        else:
            correct = np.zeros(0, bool)
        log(f"{name}: loop on the clips")
        cv2.setNumThreads(1)
        loops = {}
        for clip in CLIPS:
            with quiet_native_stderr():
                loops[clip] = loop_fps(clf, shared_data("faces", clip), detect_every=RunOptions.detect_every,
                                       detector=make(LOOP_MIN_FACE))
        hits = r["hits"]
        out["detectors"][name] = {
            "about": about,
            "test": {"recall": r["recall"], "precision": r["precision"], "fp": r["fp"],
                     "median_iou": float(np.nanmedian(r["ious"])) if found else None,
                     "recall_near": float(hits[near].mean()), "n_near": int(near.sum()),
                     "recall_near_dark_ir": float(hits[near & (np.array(conds) == "dark_ir")].mean()),
                     "by_size": recall_by(hits, sizes, [size_bin(lo) for lo in SIZE_BINS[:-1]]),
                     "by_condition": recall_by(hits, conds, CONDITIONS)},
            "empty": {"frames": e["frames"], "fp": e["fp"], "fp_per_frame": e["fp"] / max(1, e["frames"])},
            "real": {"recall": rr["recall"], "precision": rr["precision"], "fp": rr["fp"],
                     "dark_recall": rd["recall"], "dark_precision": rd["precision"], "dark_fp": rd["fp"]},
            "loop": {c: {"fps": v["fps"], "frames": v["frames"], "faces": v["faces"],
                         "detect_ms_per_call": v["latency_ms"]["detect_per_call"]} for c, v in loops.items()},
            "classifier": {"found": int(len(found)), "accuracy_on_found": float(correct.mean()) if len(correct) else None,
                           "end_to_end": float(correct.sum() / len(faces))},
        }
    log("timing, detectors taking turns")
    ms = interleaved_ms({n: make(LOOP_MIN_FACE) for n, (make, _) in DETECTORS.items()}, timing, reps)
    for n, v in ms.items():
        out["detectors"][n]["ms_per_call"] = v
    out["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
    out["geometry"] = {s.name: raw_geometry(s, [(gray_of(f), [x["box"] for x in f["faces"]]) for f in calib])
                       for s in blazeface.SPECS.values()}
    return out


def pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def make_doc(r: dict, rec: dict) -> str:
    d, s = r["detectors"], r["set"]
    m = rec["machine"]
    machine = f"{m.get('processor') or m['machine']}, {m['cpu_count']} CPUs, {m['platform']}"
    sizes = [f"{lo}-{hi - 1}" for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:])]
    first = next(iter(d.values()))["test"]
    L = ["# Face detectors: Haar and BlazeFace on a labelled set",
         "",
         "Generated by `scripts/docs/bench_detectors.py`; do not edit by hand. Rerun: "
         "`python scripts/docs/make_detection_set.py`, then",
         f"`{rec['command']}`.",
         "",
         f"Machine: {machine}; Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in rec["versions"].items()) +
         f". Date: {rec['date']}.",
         "",
         "**Timing figures are noisy**: this machine was training a model in the background at the same time "
         "(the benchmark ran under `nice -n 19`; 1-minute load average "
         f"{r['load_average']['start'][0]:.1f} at the start and {r['load_average']['end'][0]:.1f} at the end, on "
         f"{m['cpu_count']} CPUs), so ms per call and fps are upper bounds on what these cores give unloaded; compare "
         "the rows with each other (the per-call timings interleave the detectors so load changes hit all alike), "
         "not with other tables. Detection and accuracy figures do not depend on load.",
         "",
         "## The set",
         "",
         f"- **Composited** (`scripts/docs/make_detection_set.py`, seed {s['params']['seed']}): {s['test_frames']} test frames "
         f"640x480 gray with {s['test_faces']} FER2013 **PublicTest** faces pasted at 24-200 px (log-uniform), random "
         f"positions, rotations up to +-{s['params']['max_angle']:g} degrees, per-face contrast and brightness, on "
         "scikit-image's faceless photos, each frame lit `normal`, `bright` (washed out), `dim`, or `dark_ir` (dark, "
         "flat, noisy: an IR driver camera at night); "
         f"{s['empty_frames']} frames with no face; {s['calib_frames']} calib frames with Training faces (used only "
         "for the box geometry below). A pasted FER2013 face is a tight 48x48 crop with no head outline, hair or "
         "neck around it: that is harder for BlazeFace (trained on whole heads in context) than for Haar (which "
         "looks at the inner face only), so the real photos and clips are the fairer test of the two.",
         f"- **Real** (`scripts/docs/detection_labels.json`, boxes checked by eye): the 5 shared photos and every 5th / "
         f"10th frame of the two shared clips: {s['real_frames']} frames, {s['real_faces']} faces; and the same "
         "frames turned dark and low-contrast (`dark_ir`).",
         f"- A face counts as found when a box overlaps it with IoU >= {IOU} (one box per face). Boxes of every "
         "detector follow FER2013's framing (BlazeFace's are moved and grown to it, see the geometry table). "
         f"Every detector keeps faces from {MIN_FACE} px (the run.py default `--min-face 40` would drop the 24-39 px "
         "bin).",
         "",
         "## Detection on the composited set",
         "",
         "| detector | recall | precision | FP per faceless frame | " + " | ".join(f"recall {b} px" for b in sizes) +
         " | " + " | ".join(f"recall {c}" for c in CONDITIONS) + f" | recall >= {NEAR} px | recall >= {NEAR} px dark_ir |",
         "| --- " * (6 + len(sizes) + len(CONDITIONS)) + "|",
         ]
    for name, v in d.items():
        t = v["test"]
        L.append(f"| {name} | {pct(t['recall'])} | {pct(t['precision'])} | {v['empty']['fp_per_frame']:.2f} | "
                 + " | ".join(pct(t["by_size"][b]["recall"]) for b in sizes) + " | "
                 + " | ".join(pct(t["by_condition"][c]["recall"]) for c in CONDITIONS)
                 + f" | {pct(t['recall_near'])} | {pct(t['recall_near_dark_ir'])} |")
    L += ["",
          "Faces per bin: " + ", ".join(f"{b} px: {first['by_size'][b]['n']}" for b in sizes) + "; "
          + ", ".join(f"{c}: {first['by_condition'][c]['n']}" for c in CONDITIONS)
          + f"; >= {NEAR} px: {first['n_near']}. Median gray level inside the face box (0-255): "
          + ", ".join(f"{c} {v:.0f}" for c, v in s["median_face_brightness"].items()) + ".",
          "",
          "## Detection on the real photos and clips",
          "",
          "| detector | recall | precision | false boxes | recall, dark_ir copy | precision, dark_ir copy |",
          "| --- | --- | --- | --- | --- | --- |"]
    for name, v in d.items():
        x = v["real"]
        L.append(f"| {name} | {pct(x['recall'])} | {pct(x['precision'])} | {x['fp']} | {pct(x['dark_recall'])} | "
                 f"{pct(x['dark_precision'])} |")
    L += ["",
          "## Speed (1 thread)",
          "",
          "ms per `detect` call: median over 20 composited frames resized to 320x240 and 640x480. Loop fps: the whole "
          f"device loop (decode, detect every {RunOptions.detect_every}rd frame with IoU tracking, crop, int8 classify, "
          "smoothing, records) on each clip (596x336), and the detector's ms per call there. Both with run.py's "
          f"`--min-face {LOOP_MIN_FACE}` (Haar's cost grows as the smallest face shrinks).",
          "",
          "| detector | ms per call, 320 px | ms per call, 640 px | " + " | ".join(f"loop fps, {c}" for c in CLIPS) +
          " | " + " | ".join(f"detect ms per call, {c}" for c in CLIPS) +
          " | " + " | ".join(f"faces reported, {c}" for c in CLIPS) + " |",
          "| --- " * (3 + 3 * len(CLIPS)) + "|"]
    for name, v in d.items():
        L.append(f"| {name} | {v['ms_per_call']['320']:.2f} | {v['ms_per_call']['640']:.2f} | "
                 + " | ".join(f"{v['loop'][c]['fps']:.1f}" for c in CLIPS) + " | "
                 + " | ".join(f"{v['loop'][c]['detect_ms_per_call']:.2f}" for c in CLIPS) + " | "
                 + " | ".join(f"{v['loop'][c]['faces']} / {v['loop'][c]['frames']} frames" for c in CLIPS) + " |")
    ref = r["classifier"]["reference_accuracy"]
    L += ["",
          "## What the user finally sees: the classifier on the faces each detector cropped",
          "",
          f"The shipped classifier (`{Path(r['classifier']['model']).relative_to(ROOT) if Path(r['classifier']['model']).is_relative_to(ROOT) else r['classifier']['model']}`) "
          f"on the {s['test_faces']} composited test faces, cropped by the loop's own `crop_face` around each "
          f"detector's box. For reference: {pct(ref.get('fer_48x48'))} on the same faces' original 48x48 pixels, "
          f"{pct(ref['truth_box'])} when cropped around the true box by `crop_face` (the lighting conditions, "
          "resampling and the crop's margin cost the difference: with no margin, i.e. FER2013's own framing, "
          f"{pct(ref.get('truth_box_no_margin'))}). End to end counts a missed face as wrong.",
          "",
          "| detector | faces found | accuracy on found faces | end to end |",
          "| --- | --- | --- | --- |"]
    for name, v in d.items():
        c = v["classifier"]
        L.append(f"| {name} | {c['found']} / {s['test_faces']} | {pct(c['accuracy_on_found'])} | {pct(c['end_to_end'])} |")
    L += ["",
          "## BlazeFace box geometry",
          "",
          "BlazeFace's own box runs from the brows to below the chin; ferlite's follow FER2013's framing. Medians of "
          "its raw boxes against the true boxes on the calib split (Training faces; IoU >= 0.3): how far the true "
          "centre sits above the box centre and how much bigger the true box is, both in units of the raw box side. "
          "`device/blazeface.py` sets `box_shift` and `box_scale` from these.",
          "",
          "| model | faces | true centre above, x side | true side / raw side | spec box_shift | spec box_scale |",
          "| --- | --- | --- | --- | --- | --- |"]
    for name, g in r["geometry"].items():
        L.append(f"| {name} | {g['n']} | {g['shift_up']:.3f} | {g['scale']:.3f} | {g['spec_shift']} | {g['spec_scale']} |")
    L += ["", "Median IoU of the matched boxes on the test frames: "
          + ", ".join(f"{n} {v['test']['median_iou']:.2f}" for n, v in d.items() if v["test"]["median_iou"] is not None)
          + ".", ""]
    return "\n".join(L)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--set", "set_dir", default=str(DEFAULT_OUT), show_default=True, type=click.Path(file_okay=False))
@click.option("--model", default=str(DEFAULT_MODEL), show_default=True, type=click.Path(exists=True, dir_okay=False),
              help="The classifier scored on each detector's crops.")
@click.option("--doc", default=str(ROOT / "docs" / "DETECTORS.md"), show_default=True, type=click.Path(dir_okay=False))
@click.option("--json", "json_path", default=str(ROOT / "runs" / "bench_detectors.json"), show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--reps", default=10, show_default=True, type=click.IntRange(1),
              help="Timing passes over 20 frames per width, detectors taking turns.")
def main(set_dir, model, doc, json_path, reps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rec = record("python scripts/docs/bench_detectors.py", sys.argv[1:],
                 {"set": set_dir, "model": model, "doc": doc, "json": json_path, "reps": reps})
    result = bench(Path(set_dir), Path(model), reps, lambda m: click.echo(m, err=True))
    result["provenance"] = rec
    write_json(json_path, result)
    write_text(doc, make_doc(result, rec))
    click.echo(f"{json_path}\n{doc}")


if __name__ == "__main__":
    main()
