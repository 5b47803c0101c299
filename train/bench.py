"""Training throughput on this machine: faces/s for each model, backend, augmentation and batch size.

    python scripts/bench_train_speed.py                       # every model, this backend
    python scripts/bench_train_speed.py --models vgg_cnn --batch 32,64,128 --json speed.json
    KERAS_BACKEND=jax python scripts/bench_train_speed.py     # the same on JAX (pip install jax)
    python scripts/bench_train_speed.py --precision float32,mixed_bfloat16   # bf16 matmuls (Intel AMX)

Times ``train_on_batch`` on random pixels after a warm-up (the data pipeline is not the bottleneck:
the faces are already in memory), and reports the implied seconds per epoch on FER2013's 25,508
training faces. A benchmark, not a test: run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRAIN_FACES = 25508  # the official split's training faces (train/data.py make_split)


def parse_opt(argv=None) -> argparse.Namespace:
    from train.registry import MODEL_NAMES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(m for m in MODEL_NAMES if m != "resnet50"),
                    help="comma-separated model names (resnet50 trains its head on cached features)")
    ap.add_argument("--batch", default="64", help="comma-separated batch sizes")
    ap.add_argument("--augment", default="on,off", help="on, off or on,off")
    ap.add_argument("--jit", default="auto", help="XLA: auto (Keras's choice), on, off, or a list like auto,on")
    ap.add_argument("--precision", default="float32",
                    help="Keras dtype policies, e.g. float32,mixed_bfloat16 (bf16 compute, float32 weights: "
                         "fast on CPUs with AMX, emulated and slow on those without)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", help="write the rows here")
    return ap.parse_args(argv)


JIT = {"auto": "auto", "on": True, "off": False}


def time_config(name: str, batch: int, augment: bool, steps: int, warmup: int, jit: str = "auto",
                precision: str = "float32") -> dict:
    import keras
    import numpy as np
    from train.config import resolve
    from train.fit import _compile
    from train.models import build_model
    cfg = resolve("best" if name == "vgg_cnn" else "default", data="-", out="-", model=name)
    keras.mixed_precision.set_global_policy(precision)  # the layers built next compute in it
    try:
        model = _compile(build_model(name, augment=cfg.augmentation if augment else False,  # the preset's kind
                                    erasing=cfg.erasing if augment else 0.0), cfg, cfg.lr)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if jit != "auto":
        model.jit_compile = JIT[jit]  # before the first step, which builds the train function
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, 48, 48, 1)).astype("float32")
    y = rng.integers(0, 7, batch)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    t = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    dt = (time.perf_counter() - t) / steps
    return {"model": name, "backend": keras.backend.backend(), "precision": precision, "batch": batch, "augment": augment,
            "params": int(model.count_params()), "jit": jit, "xla": bool(model.jit_compile), "ms_per_step": round(dt * 1e3, 1),
            "faces_per_s": round(batch / dt, 1), "epoch_s": round(TRAIN_FACES / (batch / dt), 1)}


def main(opt: argparse.Namespace) -> list[dict]:
    from device.provenance import machine_info, now_iso
    rows = []
    print(f"{'model':14s} {'backend':10s} {'precision':>14s} {'batch':>5s} {'augment':>7s} {'xla':>5s} {'ms/step':>8s} "
          f"{'faces/s':>8s} {'s/epoch':>8s}")
    for name in opt.models.split(","):
        for batch in (int(b) for b in opt.batch.split(",")):
            for aug in opt.augment.split(","):
                for jit in opt.jit.split(","):
                    for precision in opt.precision.split(","):
                        r = time_config(name, batch, aug == "on", opt.steps, opt.warmup, jit, precision)
                        rows.append(r)
                        print(f"{r['model']:14s} {r['backend']:10s} {precision:>14s} {r['batch']:5d} {aug:>7s} "
                              f"{str(r['xla']):>5s} {r['ms_per_step']:8.1f} {r['faces_per_s']:8.1f} {r['epoch_s']:8.1f}",
                              flush=True)
    if opt.json:
        from device.atomic import write_json
        write_json(opt.json, {"rows": rows, "machine": machine_info(), "date": now_iso()})
    return rows


if __name__ == "__main__":
    main(parse_opt())
