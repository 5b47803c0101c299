"""Does the device runtime give the same answers on aarch64 (a Pi) as on x86? Probe, then compare.

    python scripts/release/arch_drift.py probe OUT.json [--tree DIR] [--write-frames DIR | --read-frames DIR]
    python scripts/release/arch_drift.py compare X86.json ARM.json [--title TEXT]

``probe`` runs on one machine (scripts/release/check_aarch64.sh runs it on x86 and under an emulated
aarch64 Python) and records, with the shipped default model:

- the classifier's probabilities on the first ``--faces`` FER2013 sample faces (identical 48x48 input);
- each frame of the shared clips as decoded here (an MD5 of the gray frame), and per frame each
  detector's boxes and the probabilities of their crops (detection on every frame, no tracking);
- the same for the reference machine's own decoded frames (``--read-frames``, written there by
  ``--write-frames``), which separates video decoding from everything after it;
- the whole loop, ``device/run.py`` with its defaults (tracking, smoothing) on fer_test.mp4.

``--tree DIR`` imports ``device`` from another checkout (an older commit: the "before" column).
``compare`` matches faces frame by frame (IoU >= 0.5), prints one Markdown table, and exits 1 when
a row is out of tolerance (SAME_INPUT for identical input, OWN_DECODE for each machine's own decoding).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
# device/paths.py's rule, restated: importing device here would fix which checkout's device/ --tree probes
SHARED = Path(os.environ.get("FERLITE_SHARED") or ROOT.parent / "shared") / "data"
CLIPS = {"fer_test.mp4": 1, "fer_woman2.mp4": 8}  # clip -> every n-th frame probed (emulation is slow)
LOOP_CLIP = "fer_test.mp4"
DETECTORS = {"video": ("blazeface", "haar"), "stills": ("blazeface-full", "haar")}  # run.py's choices
DETECT_WIDTH = {"video": 320, "stills": 640}
MATCH_IOU = 0.5


# -- probe ------------------------------------------------------------------------------------------

def md5(a: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(a).tobytes()).hexdigest()


def sample_faces(n: int) -> np.ndarray:
    """The first ``n`` faces of FER2013's sample.csv (emotion,pixels,Usage) as (n, 48, 48) uint8."""
    with open(SHARED / "fer2013" / "sample.csv", newline="") as f:
        rows = [r["pixels"] for r, _ in zip(csv.DictReader(f), range(n))]
    return np.array([np.array(p.split(), np.uint8).reshape(48, 48) for p in rows])


def decode(clip: str, every: int) -> list[np.ndarray]:
    from device.sources import VideoSource
    frames = []
    with VideoSource(SHARED / "faces" / clip) as src:
        while (frame := src.read()) is not None:
            if frame.index % every == 0:
                frames.append(frame.gray)
    return frames


def photos() -> list[np.ndarray]:
    from device.sources import ImageSource
    src = ImageSource(SHARED / "faces")
    return [f.gray for f in iter(src.read, None)]


def per_frame(frames: list[np.ndarray], kind: str, clf) -> dict:
    """Each detector on each frame, its boxes and the classifier's probabilities of their crops."""
    from device.contract import crop_face
    from device.detect import make_detector
    from device.stderr import quiet_native_stderr
    out = {}
    for name in DETECTORS[kind]:
        with quiet_native_stderr():
            det = make_detector(name, detect_width=DETECT_WIDTH[kind])
        rows = []
        for gray in frames:
            boxes = det.detect(gray)
            crops = [crop_face(gray, b) for b in boxes]
            probs = clf.predict(np.stack(crops)) if crops else np.zeros((0, 7))
            rows.append({"boxes": boxes.tolist(), "probs": np.round(probs, 6).tolist(), "crops": [md5(c) for c in crops]})
        out[name] = rows
    return out


def loop_run(tree: Path) -> list[dict]:
    """device/run.py with its defaults on the loop clip: the frame records of its JSONL log."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "loop.jsonl"
        subprocess.run([sys.executable, str(tree / "device" / "run.py"), "--source", str(SHARED / "faces" / LOOP_CLIP),
                        "--log", str(log)], check=True, capture_output=True, text=True)
        records = [json.loads(x) for x in log.read_text().splitlines()]
    return [{"boxes": [f["box"] for f in r["faces"]], "probs": [list(f["probs"].values()) for f in r["faces"]]}
            for r in records if r["type"] == "frame"]


def probe(out: Path, tree: Path, faces: int, write_frames: Path | None, read_frames: Path | None) -> None:
    sys.path.insert(0, str(tree))
    from device.interpreter import TFLiteClassifier
    from device.stderr import quiet_native_stderr
    from device.provenance import machine_info, now_iso, versions
    with quiet_native_stderr():
        clf = TFLiteClassifier(tree / "device" / "models" / "default" / "model_int8.tflite", threads=1)
    result = {"machine": machine_info(), "versions": versions(), "date": now_iso(), "tree": str(tree),
              "qemu_cpu": os.environ.get("QEMU_CPU"),
              "classifier": np.round(clf.predict_batched(sample_faces(faces)), 6).tolist(), "inputs": {}}
    for clip, every in CLIPS.items():
        frames = decode(clip, every)
        if write_frames:
            write_frames.mkdir(parents=True, exist_ok=True)
            np.save(write_frames / f"{clip}.npy", np.stack(frames))
        result["inputs"][clip] = {"decoded": [md5(f) for f in frames], **per_frame(frames, "video", clf)}
        if read_frames:
            same = list(np.load(read_frames / f"{clip}.npy"))
            result["inputs"][f"{clip}, x86's frames"] = {"decoded": [md5(f) for f in same],
                                                         **per_frame(same, "video", clf)}
    stills = photos()
    result["inputs"]["5 photos"] = {"decoded": [md5(f) for f in stills], **per_frame(stills, "stills", clf)}
    result["loop"] = loop_run(tree)
    out.write_text(json.dumps(result))


# -- compare ----------------------------------------------------------------------------------------

def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


def match(a: dict, b: dict) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of one frame's faces by IoU >= MATCH_IOU -> (i, j, iou)."""
    pairs = sorted(((iou(x, y), i, j) for i, x in enumerate(a["boxes"]) for j, y in enumerate(b["boxes"])),
                   reverse=True)
    used_a, used_b, out = set(), set(), []
    for v, i, j in pairs:
        if v >= MATCH_IOU and i not in used_a and j not in used_b:
            used_a.add(i), used_b.add(j), out.append((i, j, v))
    return out


def agreement(ref: list[dict], arm: list[dict]) -> dict:
    """Faces found, matched, identical boxes, mean IoU, label agreement and max |dp| over matched faces."""
    n_ref = sum(len(f["boxes"]) for f in ref)
    n_arm = sum(len(f["boxes"]) for f in arm)
    ious, same_box, same_label, dp = [], 0, 0, [0.0]
    for a, b in zip(ref, arm):
        for i, j, v in match(a, b):
            ious.append(v)
            same_box += a["boxes"][i] == b["boxes"][j]
            pa, pb = np.asarray(a["probs"][i]), np.asarray(b["probs"][j])
            same_label += int(pa.argmax() == pb.argmax())
            dp.append(float(np.abs(pa - pb).max()))
    m = len(ious)
    same_frames = sum(a["boxes"] == b["boxes"] and a["probs"] == b["probs"] for a, b in zip(ref, arm))
    return {"frames": len(ref), "faces_ref": n_ref, "faces_arm": n_arm, "matched": m,
            "identical_boxes": same_box / m if m else 1.0, "mean_iou": float(np.mean(ious)) if m else 1.0,
            "same_label": same_label / m if m else 1.0, "max_dp": max(dp), "identical_frames": same_frames / len(ref)}


# What still counts as "the same answers". Identical input (48x48 faces, the same decoded frames, photos):
# nothing may move but the int8 classifier's last output step (1/256; XNNPACK's x86 and ARM kernels
# round a few requantizations apart). Each machine's own video decoding (FFmpeg's YUV->BGR is not
# bit-exact across CPUs) moves pixels, boxes and so labels a little; these bounds still fail a broken
# wheel, a resize that drifts again (before contract.resize, on the same frames: BlazeFace 98-99% identical
# boxes, one face more, probabilities 5 output steps apart; docs/AARCH64.md).
STEP = 1 / 256 + 1e-6
SAME_INPUT = {"same_label": 1.0, "identical_boxes": 1.0, "mean_iou": 1.0, "max_dp": 2 * STEP, "faces_ratio": 1.0}
OWN_DECODE = {"same_label": 0.90, "identical_boxes": 0.0, "mean_iou": 0.95, "max_dp": 1.0, "faces_ratio": 0.90}


def out_of_tolerance(name: str, r: dict, tol: dict) -> list[str]:
    faces_ratio = min(r["faces_ref"], r["faces_arm"]) / max(r["faces_ref"], r["faces_arm"], 1)
    bad = [f"{k} {r[k]:.4f} < {tol[k]}" for k in ("same_label", "identical_boxes", "mean_iou") if r[k] < tol[k]]
    bad += [f"max_dp {r['max_dp']:.4f} > {tol['max_dp']:.4f}"] if r["max_dp"] > tol["max_dp"] else []
    bad += [f"faces {r['faces_ref']} vs {r['faces_arm']}"] if faces_ratio < tol["faces_ratio"] else []
    return [f"{name}: {b}" for b in bad]


def classifier_row(ref: list, arm: list) -> str:
    a, b = np.asarray(ref), np.asarray(arm)
    top1 = float((a.argmax(1) == b.argmax(1)).mean())
    same = float((a == b).all(1).mean())
    return (f"| classifier, {len(a)} FER2013 sample faces (48x48, identical input) | - | - | {len(a)} | - | - | "
            f"{top1:.1%} | {np.abs(a - b).max():.4f} | {same:.1%} |")


def row(name: str, r: dict) -> str:
    return (f"| {name} | {r['faces_ref']} | {r['faces_arm']} | {r['matched']} | {r['identical_boxes']:.1%} | "
            f"{r['mean_iou']:.4f} | {r['same_label']:.1%} | {r['max_dp']:.4f} | {r['identical_frames']:.1%} |")


def describe(p: dict) -> str:
    m, v = p["machine"], p["versions"]
    cpu = f", QEMU_CPU={p['qemu_cpu']}" if p.get("qemu_cpu") else ""
    return (f"{m['machine']} ({m.get('processor') or 'unknown CPU'}) Python {m['python']}, numpy {v.get('numpy')}, "
            f"opencv {v.get('opencv-python-headless')}, ai-edge-litert {v.get('ai-edge-litert')}{cpu}")


def compare(ref: dict, arm: dict, title: str) -> tuple[str, list[str]]:
    """-> (the Markdown table, what is out of tolerance)."""
    lines = [f"**{title}**: {describe(ref)} (reference) vs {describe(arm)}; {arm['date']}", "",
             "| input, detector | faces x86 | faces aarch64 | matched (IoU >= 0.5) | identical boxes | mean IoU "
             "| same label | max abs dp | identical frames |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
             classifier_row(ref["classifier"], arm["classifier"])]
    a, b = np.asarray(ref["classifier"]), np.asarray(arm["classifier"])
    bad = [] if (a.argmax(1) == b.argmax(1)).all() and np.abs(a - b).max() <= SAME_INPUT["max_dp"] \
        else ["classifier on identical faces: labels or probabilities differ by more than one output step"]

    def add(name: str, r: dict, tol: dict) -> None:
        lines.append(row(name, r))
        bad.extend(out_of_tolerance(name, r, tol))
    for name, x in ref["inputs"].items():
        if name not in arm["inputs"]:
            continue
        y = arm["inputs"][name]
        same = sum(u == v for u, v in zip(x["decoded"], y["decoded"]))
        for det in (k for k in x if k != "decoded"):
            tol = SAME_INPUT if same == len(x["decoded"]) else OWN_DECODE
            add(f"{name} ({same}/{len(x['decoded'])} decoded frames identical), {det}", agreement(x[det], y[det]), tol)
    for name, y in arm["inputs"].items():
        if name not in ref["inputs"] and name.endswith("x86's frames"):
            clip = name.split(",")[0]
            for det in (k for k in y if k != "decoded"):
                add(f"{clip}, the same decoded frames on both, {det}", agreement(ref["inputs"][clip][det], y[det]),
                    SAME_INPUT)
    add(f"{LOOP_CLIP}, the whole loop (device/run.py defaults: BlazeFace every 3rd frame, tracking, smoothing)",
        agreement(ref["loop"], arm["loop"]), OWN_DECODE)
    return "\n".join(lines), bad


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Does the device runtime give the same answers on aarch64 (a Pi) as on x86? Probe, then compare."""


@main.command("probe")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tree", type=click.Path(file_okay=False, path_type=Path), default=ROOT,
              help="Checkout whose device/ is probed [this one].")
@click.option("--faces", type=click.IntRange(1), default=200, show_default=True,
              help="FER2013 sample faces for the classifier row.")
@click.option("--write-frames", type=click.Path(file_okay=False, path_type=Path),
              help="Save the decoded frames here (the reference machine).")
@click.option("--read-frames", type=click.Path(file_okay=False, path_type=Path),
              help="Also probe the reference machine's decoded frames.")
def probe_cli(out, tree, faces, write_frames, read_frames):
    """Record what this machine's device runtime answers into OUT (JSON)."""
    probe(out, tree.resolve(), faces, write_frames, read_frames)


@main.command("compare")
@click.argument("ref", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("arm", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", default="x86 vs aarch64", show_default=True)
def compare_cli(ref, arm, title):
    """One Markdown table of REF (x86) against ARM; exit 1 when a row is out of tolerance."""
    table, bad = compare(json.loads(ref.read_text()), json.loads(arm.read_text()), title)
    click.echo(table)
    click.echo("\n".join(["", "OUT OF TOLERANCE:", *bad]) if bad else "\nwithin tolerance (scripts/release/arch_drift.py)")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
