"""``train --teacher RUN|MODEL`` (repeatable): distil finished runs, or converted models, into this one.

The teachers are what ``convert --member ... --flip-tta`` would ship: the mean of their softmax outputs
on each face and on its mirror image. Each training face's target becomes

    y = w * teacher(face) ** (1/T), renormalised  +  (1 - w) * one-hot(its label)

with ``w = --distill-weight`` and ``T = --distill-temperature``, and the loss is cross-entropy against
y, as FER+'s soft scheme trains. Why: an ensemble of models with the mirror image inside is the most
accurate thing we have, but it costs the Pi four passes per face; a student of one network learns
from its outputs what it knows beyond the one noisy label per face, and costs one pass.

The teachers see the training faces once, unaugmented, before the first epoch ("offline" distillation):
the crop augmentation only moves the face a few pixels, and the mirror is averaged in. Their
probabilities are kept in the run folder (teacher_probs.npz), so ``--resume`` does not recompute them.
Teachers must have held out the faces this run holds out (train/warm_start.py ``check_same_faces``),
or the student would learn its validation and test faces from them; they may be any network.

A teacher may also be a converted model: a ``.tflite`` file, or a folder holding one with its
metadata.json (``device/models/default``, a convert output), run by LiteRT as the Pi runs it. Why: run
folders live outside the repository and a new machine starts without them, but the shipped default is
committed, so the best model we have can always teach the next one. Its metadata.json says which faces
it held out (``data``: sha256, split, seed, val_fraction), checked like a run's config.json.
"""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from device.atomic import atomic_path
from device.contract import as_batch
from device.errors import InputError
from device.interpreter import TFLiteClassifier
from device.metadata import read_metadata
from device.paths import portable
from device.provenance import file_sha256

from . import layers  # noqa: F401  (registers the custom layers a teacher's model.keras holds)
from .config import ConfigError, TrainConfig
from .warm_start import HELD_OUT_KEYS, WarmStartError, check_same_faces

CACHE = "teacher_probs.npz"
CONVERTED = ("model_float32.tflite", "model_int8.tflite")  # a folder's converted model, the exact one first


def check_teachers(cfg: TrainConfig, data_sha256: str, labels) -> list[Path]:
    """Each teacher's model file, once it held out this run's faces and predicts this run's labels."""
    models = []
    for source in map(Path, cfg.teachers or ()):
        tflite = converted_model(source)
        if tflite is None:
            model, _ = check_same_faces(source, cfg, data_sha256, "--teacher")
            theirs = json.loads((source / "metadata.json").read_text()).get("labels")
        else:
            model, theirs = tflite, check_converted(tflite, cfg, data_sha256)
        if list(theirs or ()) != list(labels):
            raise ConfigError(f"--teacher {source}: it predicts {theirs}, this run {list(labels)}")
        models.append(model)
    return models


def fingerprints(models: list[Path]) -> dict:
    """config.json's record of exactly which files taught the run: a converted teacher such as
    device/models/default is replaced when a better default ships, and its sha256 still finds it in git."""
    return {"teacher_files": [{"path": str(m), "sha256": file_sha256(m)} for m in models]} if models else {}


def check_unchanged(saved_config: Path, prints: dict) -> None:
    """On --resume: the teacher files are the ones the run started with, or its targets would change
    mid-run (device/models/default is replaced whenever a better default ships)."""
    try:
        before = {portable(t["path"]): t["sha256"]  # an old record's absolute path, a new one's runs/NAME
                  for t in json.loads(saved_config.read_text()).get("teacher_files", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return  # a run older than teacher_files: nothing to compare
    for t in prints.get("teacher_files", []):
        was = before.get(portable(t["path"]))
        if was is not None and was != t["sha256"]:
            raise ConfigError(f"cannot resume {saved_config.parent}: --teacher {t['path']} changed since the run "
                              f"started (sha256 {was[:12]}..., now {t['sha256'][:12]}...); "
                              "its targets would change mid-run: give the file it started with")


def converted_model(source: Path, flag: str = "--teacher") -> Path | None:
    """The .tflite file a teacher names (the file, or a folder's float32 else int8 model); None for a
    training run (a folder with model.keras), which is loaded by Keras."""
    if source.suffix == ".tflite":
        if not source.is_file():
            raise InputError(f"{flag} {source}: no such file")
        return source
    if (source / "model.keras").is_file():
        return None
    return next((source / name for name in CONVERTED if (source / name).is_file()), None)


def check_converted(model: Path, cfg: TrainConfig, data_sha256: str, flag: str = "--teacher") -> list:
    """A converted model's labels, once its metadata.json says it held out the faces this run holds out."""
    meta = read_metadata(model)  # MetadataError (one line) when it is missing or unreadable
    data = meta.get("data") or {}
    if not data.get("sha256") or any(k not in data for k in HELD_OUT_KEYS):
        raise WarmStartError(f"{flag} {model}: its metadata.json does not say which faces it held out "
                             f"(data: sha256, {', '.join(HELD_OUT_KEYS)}), so they could be this run's test faces")
    diff = [f"{k} was {data[k]!r}" for k in HELD_OUT_KEYS if data[k] != getattr(cfg, k)]
    if data["sha256"] != data_sha256:
        diff.append("its data file differs (sha256)")
    if diff:
        raise WarmStartError(f"{flag} {model}: it held out other faces ({', '.join(diff)}), so its training "
                             "faces could be this run's validation or test faces")
    return meta.get("labels")


def teacher_probs(models: list[Path], faces: np.ndarray, out: Path, batch_size: int = 256) -> np.ndarray:
    """(n, classes): the teachers' mean softmax over the faces and their mirror images; cached in ``out``."""
    key = json.dumps([[str(m), m.stat().st_size, m.stat().st_mtime_ns] for m in models] + [len(faces)])
    cache = out / CACHE
    if cache.is_file():
        try:  # a cache from other teachers, or one cut short, is made again rather than trusted
            with np.load(cache) as saved:
                if str(saved["key"]) == key:
                    return saved["probs"]
        except (OSError, ValueError, KeyError) as e:
            print(f"{cache}: unreadable ({type(e).__name__}), computing the teachers' outputs again")
    total = 0.0
    for path in models:
        run = load_teacher(path)
        for view in (faces, faces[:, :, ::-1]):
            total = total + predict(run, view, batch_size)
        print(f"teacher {path if path.suffix == '.tflite' else path.parent}: {len(faces)} training faces "
              "and their mirror images")
    probs = (total / (2 * len(models))).astype(np.float32)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, probs=probs, key=np.array(key))
    return probs


def load_teacher(path: Path):
    """(N, 48, 48) uint8 faces -> probabilities: LiteRT for a .tflite file (as the Pi runs it), else Keras."""
    if path.suffix == ".tflite":
        return TFLiteClassifier(path).predict  # ModelError: one line naming the file
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:  # a corrupt or foreign file: one line naming it, not a traceback
        raise InputError(f"--teacher: cannot load {path} ({type(e).__name__}: {e})") from None
    return lambda faces: model.predict_on_batch(as_batch(faces))


def predict(run, faces: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([np.asarray(run(np.ascontiguousarray(faces[i:i + batch_size])), np.float64)
                           for i in range(0, len(faces), batch_size)])


def distill_targets(probs: np.ndarray, labels: np.ndarray, weight: float, temperature: float) -> np.ndarray:
    """(n, classes) float32 targets: the teachers' tempered probabilities mixed with the one-hot label."""
    logp = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    soft = np.exp(logp - logp.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    onehot = np.eye(probs.shape[1])[labels]
    return (weight * soft + (1 - weight) * onehot).astype(np.float32)


def describe(probs: np.ndarray, labels: np.ndarray, n_teachers: int) -> str:
    agree = float((probs.argmax(1) == labels).mean())
    return (f"distilling {n_teachers} teacher(s) (+ mirror images): they give the training label the top "
            f"probability on {agree:.1%} of {len(labels)} training faces")
