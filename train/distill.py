"""``train --teacher RUN`` (repeatable): distil finished runs into this one.

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
"""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from device.atomic import atomic_path
from device.contract import as_batch
from device.errors import InputError

from .config import ConfigError, TrainConfig
from .warm_start import check_same_faces

CACHE = "teacher_probs.npz"


def check_teachers(cfg: TrainConfig, data_sha256: str, labels) -> list[Path]:
    """Each teacher's model file, once it held out this run's faces and predicts this run's labels."""
    models = []
    for run in map(Path, cfg.teachers or ()):
        model, _ = check_same_faces(run, cfg, data_sha256, "--teacher")
        theirs = json.loads((run / "metadata.json").read_text()).get("labels")
        if list(theirs or ()) != list(labels):
            raise ConfigError(f"--teacher {run}: it predicts {theirs}, this run {list(labels)}")
        models.append(model)
    return models


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
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as e:  # a corrupt or foreign file: one line naming it, not a traceback
            raise InputError(f"--teacher: cannot load {path} ({type(e).__name__}: {e})") from None
        for view in (faces, faces[:, :, ::-1]):
            total = total + predict(model, view, batch_size)
        print(f"teacher {path.parent}: {len(faces)} training faces and their mirror images")
    probs = (total / (2 * len(models))).astype(np.float32)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, probs=probs, key=np.array(key))
    return probs


def predict(model: keras.Model, faces: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([np.asarray(model.predict_on_batch(as_batch(faces[i:i + batch_size])), np.float64)
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
