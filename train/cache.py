"""Frozen-backbone feature cache: run ResNet50 once per face and view, then train only the head.

With the backbone frozen (and BatchNorm in inference mode) it is a fixed function, so a
phase-1 epoch does not need to run it again: we store its outputs for K views of every
training face (view 0 plain, views 1.. augmented) and for the val faces, as float16 .npy
files in ``<run>/cache/`` (memory-mapped, so they need not fit in RAM, and kept so --resume
reuses them). Each epoch draws one view per face. See python -m train bench --feature-cache.
"""
from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from device.atomic import atomic_path
from device.contract import as_batch


def compute_features(backbone: keras.Model, faces: np.ndarray, path: Path, augment: keras.Model | None = None,
                     batch_size: int = 64, label: str = "") -> np.ndarray:
    """backbone(augment(faces)) as a float16 memmap at ``path`` (.npy); reused if already complete."""
    path = Path(path)
    if path.exists():
        return np.load(path, mmap_mode="r")
    shape = (len(faces),) + tuple(backbone.output.shape[1:])
    bar = keras.utils.Progbar(len(faces), unit_name="face", verbose=1 if label else 0)
    if label:
        print(f"caching backbone features: {label}")
    with atomic_path(path) as tmp:  # a half-written cache never looks finished
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        for i in range(0, len(faces), batch_size):
            x = as_batch(faces[i:i + batch_size])
            if augment is not None:
                x = keras.ops.convert_to_numpy(augment(x, training=True))
            out[i:i + len(x)] = backbone.predict_on_batch(x).astype(np.float16)
            bar.add(len(x))
        out.flush()
        del out
    return np.load(path, mmap_mode="r")


def cache_split(backbone, augment, train_faces, val_faces, folder: Path, views: int, batch_size: int = 64):
    """([train view 0..K-1 memmaps], val memmap) in ``folder``."""
    folder = Path(folder)
    train = [compute_features(backbone, train_faces, folder / f"train_view{k}.npy", augment if k else None,
                              batch_size, f"train view {k + 1}/{views}") for k in range(views)]
    val = compute_features(backbone, val_faces, folder / "val.npy", None, batch_size, "val")
    return train, val


class FeatureBatches(keras.utils.PyDataset):
    """Batches (features, labels, sample weights); each epoch draws one cached view per face."""

    def __init__(self, views, labels, weights=None, batch_size=64, shuffle=True, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.views, self.labels, self.batch_size, self.shuffle = views, np.asarray(labels), batch_size, shuffle
        self.weights = None if weights is None else np.asarray(weights, np.float32)
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def on_epoch_end(self):
        n = len(self.labels)
        self.order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        self.view_of = self.rng.integers(0, len(self.views), n) if self.shuffle else np.zeros(n, int)

    def __len__(self):
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, i):
        idx = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])  # sorted: sequential reads
        x = np.empty((len(idx),) + self.views[0].shape[1:], np.float32)
        for v in np.unique(self.view_of[idx]):
            sel = self.view_of[idx] == v
            x[sel] = self.views[v][idx[sel]]
        if self.weights is None:
            return x, self.labels[idx]
        return x, self.labels[idx], self.weights[idx]
