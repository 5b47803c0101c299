"""FER2013 loading (Kaggle CSV, gzip or an image-folder tree) and leak-free splits.

numpy and OpenCV only: ``convert`` imports this to recover a run's calibration and
test faces without pulling in Keras. Usage:

    ds = load_fer2013("fer2013.csv.gz")
    split = make_split(ds, "official", seed=0, val_fraction=0.1)
    ds.faces[split.train], ds.labels[split.train]
"""
from __future__ import annotations

import gzip
import hashlib
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.contract import INPUT_SIZE, LABELS, face_to_input
from device.errors import InputError

NUM_PIXELS = INPUT_SIZE * INPUT_SIZE
USAGES = ("Training", "PublicTest", "PrivateTest")
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, as Excel and some editors save CSV
INTEGER = re.compile(rb"-?[0-9]+")  # what a label or a pixel may be (int() also takes "+3", "0_3", " 3")
USAGE_DTYPE = "<U11"  # fits every usage, so assigning "PrivateTest" into a Training-only array never truncates
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
# Split-folder names of the common Kaggle/ImageNet-style re-packagings -> FER2013 Usage.
SPLIT_FOLDERS = {"training": "Training", "train": "Training", "publictest": "PublicTest",
                 "test": "PublicTest", "val": "PublicTest", "valid": "PublicTest",
                 "validation": "PublicTest", "privatetest": "PrivateTest"}


class DataError(InputError):
    """The data cannot be used as given; the message names the file (and line) at fault."""


@dataclass
class Dataset:
    faces: np.ndarray   # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, index into LABELS
    usage: np.ndarray   # (N,) str: Training | PublicTest | PrivateTest
    source: str         # path as given
    sha256: str         # of the file bytes (folder: sorted relative paths + bytes)

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict:
        """{usage: [count per class]} for the usages present."""
        return {u: np.bincount(self.labels[self.usage == u], minlength=len(LABELS)).tolist()
                for u in USAGES if (self.usage == u).any()}


def load_fer2013(path) -> Dataset:
    """A .csv / .csv.gz in the Kaggle ``emotion,pixels,Usage`` format, or an image-folder tree."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or folder")
    if p.is_dir():
        return _load_folder(p, str(path))
    try:
        raw = p.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix says
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # truncated or corrupt gzip (BadGzipFile is an OSError)
        raise DataError(f"{path}: cannot read ({e})") from None
    faces, labels, usage = _parse_csv(raw, str(path))
    return Dataset(faces, labels, usage, str(path), sha)


def _parse_csv(raw: bytes, name: str):
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    lines = raw.split(b"\n")
    # Keep 1-based line numbers (as an editor shows them) for every non-blank line.
    numbered = [(i + 1, ln.rstrip(b"\r")) for i, ln in enumerate(lines) if ln.strip()]
    if not numbered:
        raise DataError(f"{name}: empty file")
    header_no, header = numbered[0]
    cols = [c.strip().strip(b'"').decode("utf-8", "replace").lower() for c in header.split(b",")]
    if "emotion" not in cols or "pixels" not in cols:
        raise DataError(f"{name}:{header_no}: expected a header with columns emotion,pixels[,Usage], got {header[:80]!r}")
    ie, ip = cols.index("emotion"), cols.index("pixels")
    iu = cols.index("usage") if "usage" in cols else None  # a train-only file may have no Usage column
    rows = numbered[1:]
    if not rows:
        raise DataError(f"{name}: no data rows after the header")
    fields = [ln.split(b",") for _, ln in rows]
    bad = next((k for k, f in enumerate(fields) if len(f) != len(cols)), None)
    if bad is not None:
        raise DataError(f"{name}:{rows[bad][0]}: expected {len(cols)} comma-separated fields, got {len(fields[bad])}")

    # Fast path: the whole pixel column in one numpy call; any doubt -> the per-row check names the line.
    pix = [f[ip].strip().strip(b'"').strip() for f in fields]
    joined = b" ".join(pix)
    counts_ok = all(s.count(b" ") == NUM_PIXELS - 1 for s in pix) and b"  " not in joined
    chars_ok = not joined.translate(None, b"0123456789 ")
    values = _pixel_values(joined) if counts_ok and chars_ok else None
    if values is not None and values.size != len(rows) * NUM_PIXELS:
        values = None
    emotions = [f[ie].strip().strip(b'"') for f in fields]
    usage_raw = [f[iu].strip().strip(b'"').decode("utf-8", "replace") for f in fields] if iu is not None else None
    labels = np.array([int(e) for e in emotions], np.int64) if all(e.isdigit() for e in emotions) else None
    usage_ok = usage_raw is None or set(usage_raw) <= set(USAGES)
    if values is None or labels is None or labels.max() >= len(LABELS) or not usage_ok:
        # The slow, exact parse decides: it names the first bad line, or (pixels the fast path
        # does not take, e.g. tab-separated) returns the rows it read.
        checked = [_check_row(name, line_no, e, p, usage_raw[k] if usage_raw else "Training")
                   for (line_no, _), e, p, k in zip(rows, emotions, pix, range(len(rows)))]
        labels = np.array([label for label, _ in checked], np.int64)
        values = np.stack([px for _, px in checked])
    faces = values.astype(np.uint8).reshape(len(rows), INPUT_SIZE, INPUT_SIZE)
    usage = np.array(usage_raw if usage_raw is not None else ["Training"] * len(rows), USAGE_DTYPE)
    return faces, labels, usage


def _check_row(name: str, line_no: int, emotion: bytes, pixels: bytes, usage: str) -> tuple[int, np.ndarray]:
    """The slow, exact check of one row -> (label, pixels); raises DataError naming the line."""
    where = f"{name}:{line_no}"
    if not INTEGER.fullmatch(emotion):
        raise DataError(f"{where}: emotion {emotion[:20].decode('utf-8', 'replace')!r} is not an integer")
    label = int(emotion)
    if not 0 <= label < len(LABELS):
        raise DataError(f"{where}: emotion {label} outside 0..{len(LABELS) - 1}")
    if usage not in USAGES:
        raise DataError(f"{where}: unknown Usage {usage!r} (expected one of {', '.join(USAGES)})")
    tokens = pixels.split()
    if len(tokens) != NUM_PIXELS:
        raise DataError(f"{where}: expected {NUM_PIXELS} pixels (48x48), got {len(tokens)}")
    values = _pixel_values(b" ".join(tokens))
    if values is not None:
        return label, values
    for k, t in enumerate(tokens):  # which pixel is wrong, for the message
        if not INTEGER.fullmatch(t):
            raise DataError(f"{where}: pixel {k + 1} is not a number: {t[:20].decode('utf-8', 'replace')!r}")
        if not 0 <= int(t) <= 255:
            raise DataError(f"{where}: pixel {k + 1} = {t[:20].decode('utf-8', 'replace')} outside 0..255")
    return label, np.array([int(t) for t in tokens], np.int32)  # good, if unusual ("0005")


def _pixel_values(joined: bytes) -> np.ndarray | None:
    """Space-separated pixels -> int32 values, or None at any doubt (the caller then looks closer)."""
    if joined.translate(None, b"0123456789 ") or b"  " in joined:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        values = np.fromstring(joined, dtype=np.int32, sep=" ")
    if values.min(initial=0) < 0 or values.max(initial=0) > 255:
        return None
    # numpy wraps a number too big for int32 without a word (4294967301 -> 5): the digits read
    # must be the digits written (this also sends "005" to the exact parse).
    digits = len(joined) - joined.count(b" ")
    return values if digits == values.size + int((values >= 10).sum()) + int((values >= 100).sum()) else None


def _load_folder(root: Path, name: str) -> Dataset:
    """``root/<split>/<class>/*.png`` (or ``root/<class>/*`` = all Training); class names matched to LABELS."""
    by_name = {lab.lower(): i for i, lab in enumerate(LABELS)}
    subdirs = sorted(d for d in root.iterdir() if d.is_dir())
    if subdirs and all(d.name.lower() in by_name for d in subdirs):
        split_dirs = [(root, "Training")]
    else:
        names = {d.name.lower() for d in subdirs}
        split_dirs = []
        for d in subdirs:
            key = d.name.lower()
            if key not in SPLIT_FOLDERS:
                raise DataError(f"{d}: unknown split folder (expected train/test, or Training/PublicTest/PrivateTest)")
            usage = SPLIT_FOLDERS[key]
            # With both val/ and test/, val is the public and test the private test set.
            if key == "test" and names & {"val", "valid", "validation"}:
                usage = "PrivateTest"
            split_dirs.append((d, usage))
    faces, labels, usage, h = [], [], [], hashlib.sha256()
    for split_dir, use in split_dirs:
        for cdir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
            if cdir.name.lower() not in by_name:
                raise DataError(f"{cdir}: unknown class folder (expected one of {', '.join(LABELS)}, any case)")
            for f in sorted(cdir.iterdir()):
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                data = f.read_bytes()
                h.update(str(f.relative_to(root).as_posix()).encode() + b"\0" + data)
                img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise DataError(f"{f}: unreadable image")
                faces.append(face_to_input(img))
                labels.append(by_name[cdir.name.lower()])
                usage.append(use)
    if not faces:
        raise DataError(f"{name}: no images found (expected {name}/train/<class>/*.png)")
    return Dataset(np.stack(faces), np.array(labels, np.int64), np.array(usage, USAGE_DTYPE), name, h.hexdigest())


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    kind: str               # official | random80
    test_name: str          # PublicTest | PrivateTest | random80-test
    duplicate_groups: int   # groups of >1 pixel-identical images
    dropped: int            # train/val rows dropped because they duplicate a val/test image

    def summary(self) -> str:
        return (f"split {self.kind}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)} "
                f"({self.test_name}); {self.duplicate_groups} duplicate groups, {self.dropped} rows dropped as copies of held-out faces")


def duplicate_groups(faces: np.ndarray) -> np.ndarray:
    """Group id per row; pixel-identical rows share one (a hash of the pixel bytes)."""
    flat = np.ascontiguousarray(faces.reshape(len(faces), -1))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    _, inverse = np.unique(keys, return_inverse=True)
    return inverse.ravel()


def _carve(idx: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float, rng) -> tuple:
    """Split ``idx`` into (keep, carved) with ~fraction per class carved, whole groups on one side."""
    idx = np.asarray(idx)
    if len(idx) == 0 or fraction <= 0:
        return idx, idx[:0]
    g = groups[idx]
    uniq, first = np.unique(g, return_index=True)
    glabel = labels[idx][first]                       # a group's class = its first member's
    gsize = np.bincount(np.searchsorted(uniq, g), minlength=len(uniq))
    take = np.zeros(len(uniq), bool)
    for c in np.unique(glabel):
        members = np.flatnonzero(glabel == c)
        members = members[rng.permutation(len(members))]
        target = fraction * gsize[members].sum()
        csum = np.cumsum(gsize[members])
        n = int(np.searchsorted(csum, target - 1e-9)) + 1  # fewest groups reaching the target
        take[members[:min(n, len(members))] if target >= 0.5 else members[:0]] = True
    carved = take[np.searchsorted(uniq, g)]
    return idx[~carved], idx[carved]


def make_split(ds: Dataset, kind: str = "official", seed: int = 0, val_fraction: float = 0.1) -> Split:
    """Deterministic train/val/test index arrays for ``ds``; no pixel-identical image on two sides."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    groups = duplicate_groups(ds.faces)
    n_dup = int((np.bincount(groups) > 1).sum())
    rng = np.random.default_rng(seed)
    if kind == "official":
        training = np.flatnonzero(ds.usage == "Training")
        public = np.flatnonzero(ds.usage == "PublicTest")
        private = np.flatnonzero(ds.usage == "PrivateTest")
        if len(private):
            test, test_name, val = private, "PrivateTest", public
            train = training
        elif len(public):
            test, test_name = public, "PublicTest"
            train, val = _carve(training, ds.labels, groups, val_fraction, rng)
        else:
            raise DataError(f"{ds.source}: the official split needs PublicTest or PrivateTest rows; "
                            "this data has only Training rows (use --split random80)")
        # FER2013 has cross-split duplicates: a train (or val) copy of a test face is a leak, drop it.
        in_test = np.zeros(groups.max() + 1, bool)
        in_test[groups[test]] = True
        val_leak = in_test[groups[val]]
        val = val[~val_leak]
        held_out = in_test.copy()
        held_out[groups[val]] = True
        leak = held_out[groups[train]]
        train, dropped = train[~leak], int(leak.sum() + val_leak.sum())
    elif kind == "random80":
        rest, test = _carve(np.arange(len(ds)), ds.labels, groups, 0.2, rng)
        train, val = _carve(rest, ds.labels, groups, val_fraction, rng)
        test_name, dropped = "random80-test", 0
    else:
        raise DataError(f"unknown split {kind!r} (expected official or random80)")
    return Split(np.sort(train), np.sort(val), np.sort(test), kind, test_name, n_dup, dropped)
