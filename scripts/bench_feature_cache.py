"""Frozen-ResNet50 train step (backbone run every step) vs head-only step on cached features.

    python scripts/bench_feature_cache.py [--batch 32] [--steps 10] [--weights none]

Prints images/s of both and the speedup. The cached number leaves out the one-off cost of
computing the cache (about one backbone forward pass per face and view).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from train.models import assemble, build_resnet50_parts  # noqa: E402
from train.registry import normalize_weights  # noqa: E402


def images_per_s(step, x, y, steps):
    step(x, y)
    step(x, y)  # warm-up: tracing and first-call allocations
    t = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return steps * len(x) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--weights", default="none")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    augment, backbone, head = build_resnet50_parts(normalize_weights(args.weights))
    full = assemble(augment, backbone, head)
    for m in (full, head):
        m.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    x = rng.integers(0, 256, (args.batch, 48, 48, 1)).astype(np.float32)
    y = rng.integers(0, 7, args.batch)
    feats = rng.normal(size=(args.batch,) + tuple(backbone.output.shape[1:])).astype(np.float16).astype(np.float32)
    naive = images_per_s(full.train_on_batch, x, y, args.steps)
    cached = images_per_s(head.train_on_batch, feats, y, args.steps * 10)
    print(f"naive frozen-ResNet50 train step: {naive:8.1f} images/s (batch {args.batch})")
    print(f"cached-feature head train step:   {cached:8.1f} images/s (batch {args.batch})")
    print(f"speedup: {cached / naive:.1f}x  (cache cost: one backbone forward per face and view)")


if __name__ == "__main__":
    main()
