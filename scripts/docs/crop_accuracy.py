"""The shipped model's accuracy on PublicTest faces seen at camera sizes, through the crop's resize.

    python scripts/docs/crop_accuracy.py [--data ../shared/data/fer2013/fer2013.csv.gz] \\
        [--model device/models/default/model_int8.tflite] [--sizes 24,32,40,64,100,150,200,300]

FER2013 faces are 48x48, so the crop's resize never touches them in training or in `bench`. A
camera's face is bigger or smaller: each PublicTest face is shown at S x S (shrunk with INTER_AREA
below 48, enlarged with INTER_CUBIC above: a smooth stand-in for a camera's face, the same for both
rows), then brought back to 48x48 by

- ``contract``: ``device.contract.face_to_input`` (``contract.resize``, bit-identical on x86 and ARM);
- ``cv2``: the rule it replaced, cv2.resize INTER_AREA when shrinking and INTER_LINEAR when growing,

and classified. Prints accuracy per size for both, their difference and how often the two agree.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device.contract import INPUT_SIZE, face_to_input  # noqa: E402
from device.paths import shared_data  # noqa: E402
from device.interpreter import TFLiteClassifier  # noqa: E402
from device.stderr import quiet_native_stderr  # noqa: E402
from device.provenance import machine_info, now_iso, versions  # noqa: E402
from train.data import load_fer2013  # noqa: E402  (numpy + OpenCV only)

DEFAULT_DATA = shared_data("fer2013", "fer2013.csv.gz")
DEFAULT_MODEL = ROOT / "device" / "models" / "default" / "model_int8.tflite"


def cv2_rule(face: np.ndarray) -> np.ndarray:
    """The crop's resize before contract.resize (kept here only to compare against)."""
    interp = cv2.INTER_AREA if min(face.shape) >= INPUT_SIZE else cv2.INTER_LINEAR
    return cv2.resize(face, (INPUT_SIZE, INPUT_SIZE), interpolation=interp)


def shown_at(face: np.ndarray, side: int) -> np.ndarray:
    interp = cv2.INTER_AREA if side < INPUT_SIZE else cv2.INTER_CUBIC
    return cv2.resize(face, (side, side), interpolation=interp)


def accuracy_at(clf: TFLiteClassifier, faces: np.ndarray, labels: np.ndarray, side: int) -> dict:
    shown = [shown_at(f, side) for f in faces]
    pred = {name: clf.predict_batched(np.stack([fn(f) for f in shown])).argmax(1)
            for name, fn in (("contract", face_to_input), ("cv2", cv2_rule))}
    return {"side": side, **{k: float((p == labels).mean()) for k, p in pred.items()},
            "agree": float((pred["contract"] == pred["cv2"]).mean())}


@click.command()
@click.option("--data", default=str(DEFAULT_DATA), show_default=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--model", default=str(DEFAULT_MODEL), show_default=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--sizes", default="24,32,40,64,100,150,200,300", show_default=True,
              help="Face sides S in pixels, comma-separated.")
@click.option("--usage", default="PublicTest", show_default=True, help="FER2013 rows scored.")
def main(data: str, model: str, sizes: str, usage: str) -> None:
    ds = load_fer2013(data)
    keep = ds.usage == usage
    faces, labels = ds.faces[keep], ds.labels[keep]
    with quiet_native_stderr():
        clf = TFLiteClassifier(model, threads=1)
    m, v = machine_info(), versions()
    click.echo(f"{len(faces)} {usage} faces, {Path(model).name}; {now_iso()}, {m['machine']} {m['processor']}, "
               f"opencv {v.get('opencv-python-headless')}, numpy {v.get('numpy')}")
    base = float((clf.predict_batched(faces).argmax(1) == labels).mean())
    click.echo(f"as stored (48x48, no resize): {base:.4f}")
    click.echo("| face side px | contract.resize | cv2 AREA/LINEAR | difference | same label |")
    click.echo("| ---: | ---: | ---: | ---: | ---: |")
    for side in (int(s) for s in sizes.split(",")):
        r = accuracy_at(clf, faces, labels, side)
        click.echo(f"| {side} | {r['contract']:.4f} | {r['cv2']:.4f} | {r['contract'] - r['cv2']:+.4f} | {r['agree']:.4f} |")


if __name__ == "__main__":
    main()
