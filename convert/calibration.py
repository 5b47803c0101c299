"""The int8 representative dataset: real training faces from the run's own data and split.

A run folder's ``config.json`` names its data file, split kind, seed and
validation fraction; re-loading with those gives back exactly the faces the model
was trained on (``split.train``) and the faces it was evaluated on (``split.test``).
Calibration takes a seeded, shuffled sample of the training faces. It never falls
back to random data: without the real file it stops, and a calibration set that is
too small, constant or noise-like is refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device import contract
from device.errors import InputError
from device.paths import REPO
from device.provenance import file_sha256

DEFAULT_CALIB = 300
# Neighbouring pixels of a real face are strongly correlated (about 0.9 and up on
# FER2013); i.i.d. noise gives about 0. A set whose median correlation is below this
# is not faces.
MIN_NEIGHBOUR_CORRELATION = 0.5
# Per-face pixel standard deviation below this is a blank (constant) image.
MIN_FACE_STD = 2.0


class CalibrationError(InputError):
    """No usable real calibration data (missing file, wrong file, too few or fake faces)."""


@dataclass
class RunData:
    """The run's data re-loaded the way it was trained: faces and labels, and the split's index arrays."""
    faces: np.ndarray            # (N, 48, 48) uint8
    labels: np.ndarray           # (N,) int64
    train: np.ndarray            # index arrays into faces/labels
    val: np.ndarray
    test: np.ndarray
    split_kind: str
    test_name: str
    path: Path
    sha256: str
    notes: list[str] = field(default_factory=list)


def expected_sha256(meta: dict, cfg: dict | None = None) -> str | None:
    """The data file's sha256 as the run recorded it (metadata first, then config), if it did."""
    for src in (meta or {}, cfg or {}):
        for key in ("data_sha256", "dataset_sha256", "sha256"):
            if isinstance(src.get(key), str):
                return src[key]
        for key in ("data", "dataset", "provenance"):
            sub = src.get(key)
            if isinstance(sub, dict):
                for k in ("sha256", "data_sha256"):
                    if isinstance(sub.get(k), str):
                        return sub[k]
    return None


def resolve_data_path(cfg_data, run_dir, override=None, what: str = "training data", flag: str = "--data") -> Path:
    """The data file to load: ``--data`` if given, else config.json's ``data`` (relative to cwd or the run)."""
    if override is not None:
        p = Path(override)
        if not p.is_file():
            raise CalibrationError(f"{flag} file not found: {p}")
        return p
    if not cfg_data:
        raise CalibrationError("the run's config.json names no 'data' file; pass --data PATH "
                               "(int8 calibration needs the real training faces, never random data)")
    p = Path(str(cfg_data))
    candidates = [p] if p.is_absolute() else [p, Path(run_dir) / p, Path(run_dir).parent / p,
                                              REPO / p]  # records name data relative to the repository (device/paths.py)
    for c in candidates:
        if c.is_file():
            return c
    raise CalibrationError(f"{what} not found: {p} (named in the run's config.json); pass {flag} PATH "
                           "to the moved file (int8 calibration needs the real training faces, never random data)")


def load_run_data(run_dir, cfg: dict, meta: dict, data=None, ferplus=None) -> RunData:
    """Re-load the run's data, labels and split with ``train.data`` and ``train.ferplus`` exactly as training
    did; check the sha256s. ``ferplus``: the run's FER+ votes file, if it moved since training."""
    try:
        from train.data import load_fer2013
        from train.ferplus import run_split
    except ImportError as e:
        raise CalibrationError(f"cannot re-load the run's data: train.data is unavailable ({e})") from None
    missing = [k for k in ("split", "seed", "val_fraction") if k not in cfg]
    if missing:
        raise CalibrationError(f"the run's config.json lacks {', '.join(missing)}: cannot rebuild its split")
    path = resolve_data_path(cfg.get("data"), run_dir, data)
    try:
        ds = load_fer2013(path)
    except Exception as e:
        raise CalibrationError(f"cannot load {path}: {e}") from None
    actual = getattr(ds, "sha256", None) or file_sha256(path)
    want = expected_sha256(meta, cfg)
    notes = []
    if want is None:
        notes.append("the run's metadata records no data sha256: the data file could not be verified")
    elif want != actual:
        raise CalibrationError(f"{path} has sha256 {actual[:12]}..., but the run was trained on {want[:12]}...: "
                               "pass --data with the run's own data file")
    fp = _ferplus_labels(ds, run_dir, cfg, meta, ferplus)
    try:
        split = run_split(ds, fp, cfg["split"], cfg["seed"], cfg["val_fraction"])
    except Exception as e:
        raise CalibrationError(f"cannot rebuild the run's split {cfg['split']!r}: {e}") from None
    if fp is not None:
        ds = fp.ds  # scored on FER+ majority labels, as training was
        notes.append(f"labels: FER+ votes ({cfg.get('label_scheme')} scheme), evaluated on majority labels")
    train = split.train  # calibration pool: the whole training side (a --limit run trained on a subsample of it)
    if cfg.get("limit"):
        try:
            from train.fit import limit_split
        except ImportError as e:
            raise CalibrationError(f"the run used limit={cfg['limit']} but train.fit is unavailable ({e})") from None
        split = limit_split(split, int(cfg["limit"]), cfg["seed"])
        notes.append(f"the run trained with limit={cfg['limit']}: evaluated on its limited test split "
                     f"({len(split.test)} faces); calibration draws from the whole training side")
    return RunData(faces=np.asarray(ds.faces), labels=np.asarray(ds.labels, np.int64),
                   train=np.asarray(train, np.int64), val=np.asarray(split.val, np.int64),
                   test=np.asarray(split.test, np.int64), split_kind=str(getattr(split, "kind", cfg["split"])),
                   test_name=str(getattr(split, "test_name", "test")), path=path, sha256=actual, notes=notes)


def _ferplus_labels(ds, run_dir, cfg: dict, meta: dict, override):
    """The run's FER+ relabelling (train.ferplus.load_labels), its votes file checked by sha256; None for FER2013 labels."""
    from train.ferplus import load_labels
    if cfg.get("labels", "fer2013") == "fer2013":
        if override is not None:
            raise CalibrationError("--ferplus given, but the run was trained on FER2013's own labels")
        return None
    if override is None and not cfg.get("ferplus"):
        raise CalibrationError("the run's config.json names no 'ferplus' votes file; pass --ferplus PATH")
    path = resolve_data_path(cfg.get("ferplus"), run_dir, override, what="FER+ votes", flag="--ferplus")
    try:
        fp = load_labels(ds, cfg["labels"], path, cfg.get("label_scheme", "majority"))
    except Exception as e:
        raise CalibrationError(f"cannot load the FER+ votes {path}: {e}") from None
    want = (meta.get("data") or {}).get("ferplus_sha256")
    if want and want != fp.votes.sha256:
        raise CalibrationError(f"{path} has sha256 {fp.votes.sha256[:12]}..., but the run was trained on "
                               f"{want[:12]}...: pass --ferplus with the run's own votes file")
    return fp


def preprocess(faces) -> np.ndarray:
    """Any stack of face crops -> (N, 48, 48) uint8 through ``contract.face_to_input`` (as everything else)."""
    faces = np.asarray(faces)
    if faces.ndim == 4 and faces.shape[-1] == 1:
        faces = faces[..., 0]
    if faces.ndim == 3 and faces.shape[1:] == contract.INPUT_SHAPE[:2] and faces.dtype == np.uint8:
        return faces  # already the contract's input; face_to_input would return each one unchanged
    return np.stack([contract.face_to_input(f) for f in faces]) if len(faces) else \
        np.zeros((0, *contract.INPUT_SHAPE[:2]), np.uint8)


def neighbour_correlation(faces: np.ndarray) -> np.ndarray:
    """Per face: correlation between horizontally adjacent pixels (about 0.9+ for faces, about 0 for noise)."""
    x = np.asarray(faces, np.float64)
    a = x[:, :, :-1].reshape(len(x), -1)
    b = x[:, :, 1:].reshape(len(x), -1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 0.0)


def check_calibration(faces: np.ndarray, wanted: int) -> dict:
    """Refuse a calibration set that is smaller than asked, constant or noise-like; return its stats."""
    faces = np.asarray(faces)
    if faces.dtype != np.uint8 or faces.ndim != 3 or faces.shape[1:] != contract.INPUT_SHAPE[:2]:
        raise CalibrationError(f"calibration faces must be (N, 48, 48) uint8, got {faces.dtype} {faces.shape}")
    if len(faces) < wanted:
        raise CalibrationError(f"calibration set has {len(faces)} faces, fewer than the {wanted} asked "
                               "(lower --calib or use the full data file)")
    std = faces.reshape(len(faces), -1).std(axis=1)
    blank = float((std < MIN_FACE_STD).mean())
    if blank > 0.5 or float(faces.std()) < MIN_FACE_STD:
        raise CalibrationError(f"calibration set is constant ({blank:.0%} blank faces): refusing to calibrate on it")
    corr = float(np.median(neighbour_correlation(faces)))
    if corr < MIN_NEIGHBOUR_CORRELATION:
        raise CalibrationError(f"calibration set looks like noise, not faces (median neighbour-pixel correlation "
                               f"{corr:.2f} < {MIN_NEIGHBOUR_CORRELATION}): refusing to calibrate on it")
    return {"n": int(len(faces)), "pixel_mean": float(faces.mean()), "pixel_std": float(faces.std()),
            "pixel_min": int(faces.min()), "pixel_max": int(faces.max()),
            "median_neighbour_correlation": round(corr, 4), "blank_fraction": blank}


def calibration_faces(faces: np.ndarray, pool: np.ndarray | None, n: int = DEFAULT_CALIB,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` shuffled, seeded faces from ``faces[pool]`` (the training split), checked.

    Returns (faces (n, 48, 48) uint8, their indices into ``faces``, stats).
    """
    if n <= 0:
        raise CalibrationError(f"--calib must be positive, got {n}")
    pool = np.arange(len(faces)) if pool is None else np.asarray(pool, np.int64)
    if len(pool) < n:
        raise CalibrationError(f"the run's training split has {len(pool)} faces, fewer than the {n} "
                               "calibration faces asked (lower --calib or use the full data file)")
    idx = np.random.default_rng(seed).permutation(pool)[:n]
    chosen = preprocess(np.asarray(faces)[idx])
    stats = check_calibration(chosen, n)
    stats["seed"] = int(seed)
    return chosen, idx, stats
