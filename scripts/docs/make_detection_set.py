"""The labelled face-detection set that scripts/docs/bench_detectors.py scores detectors on.

    python scripts/docs/make_detection_set.py [--fer ../shared/data/fer2013/fer2013.csv.gz] \\
        [--out .cache/detection_set] [--frames 400] [--calib-frames 150] [--empty 100] [--seed 0]

Two parts:

1. **Real photos and clips** (``../shared/data/faces``): their face boxes were proposed by this
   script (``--propose-real DIR``: Haar and BlazeFace boxes averaged, drawn on contact sheets) and
   then checked and corrected by eye once; the result is ``scripts/docs/detection_labels.json`` in git.
   Clips are labelled on every ``step``-th frame.
2. **Composited FER2013 faces** (``device/detection_set.py``), generated into ``--out`` (a cache, never in git): real
   background photos (the ones scikit-image ships, read out of its wheel, none with a human face)
   cut to 640x480 gray, with 1-3 FER2013 faces pasted in at 24-200 px, random positions, small
   rotations, per-face contrast/brightness, and a whole-frame lighting condition: ``normal``,
   ``bright`` (washed out), ``dim``, or ``dark_ir`` (a dark, low-contrast, noisy gray frame like an
   IR driver camera at night). ``test`` frames use PublicTest faces, ``calib`` frames Training
   faces (for fitting box geometry, never for scores), ``empty`` frames have no face at all.

Box convention (both parts): a square around the face in FER2013's own framing, i.e. the region a
48x48 FER2013 image covers (top of the forehead to below the chin, cheek to cheek); for a pasted
face that is the pasted square itself. OpenCV's Haar boxes on such faces are 0.95 of it.

Output: ``frames/*.png`` (8-bit gray) and ``labels.json`` (every frame's faces: box x, y, w, h,
FER label, size, angle, condition, brightness), with the command and parameters that made them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: the packages are in the repository

import click  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device.atomic import write_json  # noqa: E402
from device.contract import LABELS  # noqa: E402
from device.detection_set import (BACKGROUNDS, CONDITIONS, DEFAULT_OUT, FACE_SIDE, FRAME_SIZE, MAX_ANGLE,  # noqa: E402
                                  PARAMS_VERSION, SKIMAGE, make_split, read_clip, skimage_backgrounds)
from device.paths import shared_data  # noqa: E402
from device.provenance import record  # noqa: E402

REAL_LABELS = Path(__file__).with_name("detection_labels.json")


# -- proposing boxes for the real photos and clips (used once; the checked result is in git) --------

def propose_boxes(gray: np.ndarray, detectors: dict) -> list[list[int]]:
    """Average of the detectors' boxes that agree (IoU > 0.3), each mapped to the FER framing."""
    from device.detect import iou_matrix
    found = [d.detect(gray) for d in detectors.values()]
    base = max(found, key=len)
    out = []
    for b in base:
        same = [f[np.argmax(iou_matrix(b[None], f)[0])] for f in found if len(f) and iou_matrix(b[None], f).max() > 0.3]
        out.append([int(v) for v in np.round(np.mean(same, 0))])
    return out


def contact_sheet(tiles: list[tuple[str, np.ndarray, list]], path: Path, tile: int = 300) -> None:
    """One tile per proposed box ``(title, bgr, box)``, zoomed to the box and its surroundings (the box
    drawn, 1 px lines) so that a few pixels of error are visible when checking by eye."""
    out = []
    for title, img, (x, y, w, h) in tiles:
        m = int(0.6 * max(w, h))
        x0, y0 = max(0, x - m), max(0, y - m)
        crop = img[y0:min(img.shape[0], y + h + m), x0:min(img.shape[1], x + w + m)]
        k = tile / max(crop.shape[:2])
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))))
        p0 = (round((x - x0) * k), round((y - y0) * k))
        cv2.rectangle(crop, p0, (p0[0] + round(w * k), p0[1] + round(h * k)), (0, 255, 0), 1)
        canvas = np.zeros((tile, tile, 3), np.uint8)
        canvas[:crop.shape[0], :crop.shape[1]] = crop
        cv2.putText(canvas, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1)
        out.append(canvas)
    while len(out) % 4:
        out.append(np.zeros_like(out[0]))
    cv2.imwrite(str(path), np.vstack([np.hstack(out[i:i + 4]) for i in range(0, len(out), 4)]))


def write_proposals(out: Path, clip_steps: dict[str, int]) -> None:
    """Write proposals.json and contact sheets (12 boxes each) into ``out`` for checking by eye."""
    from device.detect import BlazeFaceDetector, HaarDetector
    from device import blazeface
    out.mkdir(parents=True, exist_ok=True)
    detectors = {"haar": HaarDetector(detect_width=640, min_size=24),
                 "blazeface-full": BlazeFaceDetector(blazeface.FULL_RANGE, min_size=24)}
    proposals: dict = {"images": {}, "clips": {}}
    tiles = []
    for path in sorted(shared_data("faces").glob("*")):
        if path.suffix.lower() in (".jpg", ".png"):
            img = cv2.imread(str(path))
            boxes = propose_boxes(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), detectors)
            proposals["images"][path.name] = boxes
            tiles += [(path.name, img, box) for box in boxes]
    for name, step in clip_steps.items():
        frames = read_clip(shared_data("faces", name))
        labelled = {}
        for i in range(0, len(frames), step):
            boxes = propose_boxes(cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY), detectors)
            labelled[str(i)] = boxes
            tiles += [(f"{name} {i}", frames[i], box) for box in boxes]
        proposals["clips"][name] = {"frames": len(frames), "step": step, "boxes": labelled}
    write_json(out / "proposals.json", proposals)
    for k in range(0, len(tiles), 12):
        contact_sheet(tiles[k:k + 12], out / f"sheet_{k // 12:02d}.png")
    click.echo(f"proposals and {(len(tiles) + 11) // 12} contact sheets (one tile per box) in {out}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--fer", default=str(shared_data("fer2013", "fer2013.csv.gz")), show_default=True,
              type=click.Path(exists=True), help="FER2013 csv/csv.gz with Training and PublicTest rows.")
@click.option("--out", default=str(DEFAULT_OUT), show_default=True, type=click.Path(file_okay=False))
@click.option("--frames", "n_test", default=400, show_default=True, type=click.IntRange(1),
              help="Test frames (PublicTest faces).")
@click.option("--calib-frames", "n_calib", default=150, show_default=True, type=click.IntRange(0),
              help="Calibration frames (Training faces).")
@click.option("--empty", "n_empty", default=100, show_default=True, type=click.IntRange(0), help="Frames with no face.")
@click.option("--seed", default=0, show_default=True)
@click.option("--cache", default=str(ROOT / ".cache" / "wheels"), show_default=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Regenerate even when labels.json already matches.")
@click.option("--propose-real", type=click.Path(file_okay=False),
              help="Instead: write box proposals + contact sheets for the shared photos/clips into this folder.")
def main(fer, out, n_test, n_calib, n_empty, seed, cache, force, propose_real):
    if propose_real:
        steps = {c: s["step"] for c, s in json.loads(REAL_LABELS.read_text())["clips"].items()} if REAL_LABELS.is_file() else \
            {"fer_test.mp4": 5, "fer_woman2.mp4": 10}
        write_proposals(Path(propose_real), steps)
        return
    out = Path(out)
    params = {"version": PARAMS_VERSION, "seed": seed, "frames": n_test, "calib_frames": n_calib, "empty": n_empty,
              "frame_size": FRAME_SIZE, "face_side": FACE_SIDE, "max_angle": MAX_ANGLE,
              "conditions": dict(CONDITIONS), "backgrounds": list(BACKGROUNDS), "skimage": SKIMAGE,
              "fer": str(Path(fer).name)}
    labels_path = out / "labels.json"
    if labels_path.is_file() and not force:
        old = json.loads(labels_path.read_text())
        if json.loads(json.dumps(old.get("params"))) == json.loads(json.dumps(params)):
            click.echo(f"{labels_path}: up to date ({len(old['frames'])} frames)")
            return
    from train.data import load_fer2013
    ds = load_fer2013(fer)
    backgrounds = skimage_backgrounds(Path(cache))
    (out / "frames").mkdir(parents=True, exist_ok=True)
    test_pool, calib_pool = np.flatnonzero(ds.usage == "PublicTest"), np.flatnonzero(ds.usage == "Training")
    if not len(test_pool):
        raise click.ClickException(f"{fer}: no PublicTest rows")
    frames = []
    for split, n, pool, k in (("test", n_test, test_pool, 0), ("calib", n_calib, calib_pool, 1),
                              ("empty", n_empty, None, 2)):
        frames += make_split(split, n, np.random.default_rng([seed, k]), backgrounds, ds.faces, ds.labels, pool, out)
    rec = record("python scripts/docs/make_detection_set.py", sys.argv[1:], params)
    write_json(labels_path, {"params": params, "provenance": rec, "fer_path": str(Path(fer).resolve()),
                             "fer_sha256": ds.sha256,
                             "label_names": list(LABELS),
                             "frames": frames})
    n_faces = sum(len(f["faces"]) for f in frames if f["split"] == "test")
    click.echo(f"{len(frames)} frames ({n_test} test with {n_faces} faces, {n_calib} calib, {n_empty} empty) -> {out}")


if __name__ == "__main__":
    main()
