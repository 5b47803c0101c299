"""``python -m convert crops``: a model on the loop's own crops of the composited detection set, per lighting
condition and per crop margin, around the true boxes and around each detector's boxes.

    python scripts/docs/make_detection_set.py          # once: .cache/detection_set (PublicTest faces)
    python -m convert crops device/models/default --json docs/field/crops-default.json

Why: the loop cuts ``contract.crop_face(gray, box, margin)`` around a detector's box, and the detectors'
boxes follow FER2013's framing; how much margin to add on top is a measurement, not a guess. Every face
is a PublicTest face (never a training face), so this is a test figure: choose the margin on it only
on ``--split calib``, the frames of Training faces (their accuracy is flattered, the margins' order is not).
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

PROG = "python -m convert crops"
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2)
IOU = 0.5
MIN_FACE = 20  # below the set's smallest face (24 px): no true face is filtered
DETECTORS = ("haar-640", "blazeface")


def set_faces(set_dir: Path, split: str = "test"):
    """[(gray frame, true box, label, condition)] of the set's faces of ``split``: test (PublicTest faces, to
    report) or calib (Training faces, to choose a margin on: never a test face)."""
    import cv2

    from device.detection_set import load_set
    data = load_set(set_dir)
    out = []
    for f in (f for f in data["frames"] if f["split"] == split):
        gray = cv2.imread(str(set_dir / f["file"]), cv2.IMREAD_GRAYSCALE)
        out += [(gray, np.asarray(x["box"], np.float32), int(x["label"]), f["condition"]) for x in f["faces"]]
    return out


def detector_boxes(name: str, faces) -> list:
    """For each true face, the box the detector found over it (IoU >= IOU), or None."""
    from device import blazeface
    from device.detect import BlazeFaceDetector, HaarDetector, iou_matrix
    det = (HaarDetector(detect_width=640, min_size=MIN_FACE) if name == "haar-640"
           else BlazeFaceDetector(blazeface.SHORT_RANGE, threads=1, min_size=MIN_FACE))
    found_by_frame, out = {}, []
    for gray, box, _, _ in faces:
        key = id(gray)
        if key not in found_by_frame:
            found_by_frame[key] = np.asarray(det.detect(gray), np.float32).reshape(-1, 4)
        found = found_by_frame[key]
        ious = iou_matrix(box[None], found)[0] if len(found) else np.zeros(0)
        out.append(found[int(np.argmax(ious))] if len(ious) and ious.max() >= IOU else None)
    return out


def accuracy_by_condition(clf, faces, boxes, margin: float) -> dict:
    """Accuracy on the faces whose box is known, overall and per lighting condition, at ``margin``."""
    from device.contract import crop_face
    keep = [k for k, b in enumerate(boxes) if b is not None]
    if not keep:
        return {"n": 0}
    crops = np.stack([crop_face(faces[k][0], boxes[k], margin=margin) for k in keep])
    right = clf.predict_batched(crops, 256).argmax(1) == np.array([faces[k][2] for k in keep])
    conds = np.array([faces[k][3] for k in keep])
    return {"n": len(keep), "all": float(right.mean()),
            **{c: float(right[conds == c].mean()) for c in sorted(set(conds))}}


def study(model, set_dir: Path, split: str = "test", margins=MARGINS, detectors=DETECTORS) -> dict:
    from device.interpreter import TFLiteClassifier

    from .field_bench import tflite_in
    clf = TFLiteClassifier(tflite_in(model), threads=1)
    faces = set_faces(set_dir, split)
    sources = {"true box": [f[1] for f in faces], **{d: detector_boxes(d, faces) for d in detectors}}
    return {src: {f"{m:.2f}": accuracy_by_condition(clf, faces, boxes, m) for m in margins}
            for src, boxes in sources.items()}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model")
@click.option("--set", "set_dir", default=".cache/detection_set", show_default=True,
              help="The composited detection set (scripts/docs/make_detection_set.py).")
@click.option("--split", type=click.Choice(["test", "calib"]), default="test", show_default=True,
              help="test: the frames of PublicTest faces (report); calib: of Training faces (choose a margin).")
@click.option("--json", "json_path", help="Write the table here, with the command, machine and date.")
@click.pass_context
def cli(ctx, model, set_dir, split, json_path):
    """Accuracy on the loop's crops of composited PublicTest faces, per margin, box source and lighting."""
    from device.atomic import write_json
    from device.errors import InputError
    from device.paths import portable
    from device.provenance import record
    if not (Path(set_dir) / "labels.json").is_file():
        raise InputError(f"{set_dir}: no detection set there (python scripts/docs/make_detection_set.py)")
    table = study(model, Path(set_dir), split)
    for src, rows in table.items():
        click.echo(src + ": " + "  ".join(f"margin {m}: {100 * r.get('all', 0):.1f}% (n={r['n']})"
                                          for m, r in rows.items()))
    if json_path:
        out = {"model": portable(model), "split": split, "table": table, "provenance": record(PROG, ctx.obj, None)}
        click.echo(f"wrote {write_json(Path(json_path), out)}")
