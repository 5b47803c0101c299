"""Training throughput on this machine: faces/s for each model, backend, augmentation and batch size.

    python -m train bench                       # every model, this backend
    python -m train bench --models vgg_cnn --batch 32,64,128 --json speed.json
    KERAS_BACKEND=jax python -m train bench     # the same on JAX (pip install jax)
    python -m train bench --precision float32,mixed_bfloat16   # bf16 matmuls (Intel AMX)
    python -m train bench --preset paper --models vanilla_cnn,residual_cnn --augment on   # the paper's recipe
    python -m train bench --feature-cache --batch 32 [--weights none]   # resnet50: frozen backbone vs cache

Times ``train_on_batch`` on random pixels after a warm-up (the data pipeline is not the bottleneck:
the faces are already in memory), and reports the implied seconds per epoch on the preset's split:
FER2013's 25,508 official training faces, or 23,251 for random80 on Training + PublicTest. Without
``--preset`` each model trains with its usual recipe (``shipped`` for vgg_cnn, else ``baseline``);
with one, with that preset's optimizer, augmentation and batch size (``--batch`` still overrides;
class weights scale the loss and cost nothing to time). ``--feature-cache`` times instead a
frozen-ResNet50 step (backbone run every step) against the head-only step on cached features
(train/cache.py), leaving out the one-off cost of the cache (about one backbone forward pass per
face and view). A benchmark, not a test: run it on an
otherwise idle machine.
"""
from __future__ import annotations

import itertools
import time

import click

from .config import PRESETS
from .registry import MODEL_NAMES

# Training faces per split (train/data.py make_split, seed 0, val fraction 0.1, on Training + PublicTest).
TRAIN_FACES = {"official": 25508, "random80": 23251}
JIT = {"auto": "auto", "on": True, "off": False}


def default_preset(name: str) -> str:
    """The recipe a model trains with when bench is not told one."""
    return "shipped" if name == "vgg_cnn" else "baseline"


def time_config(name: str, batch: int | None, augment: bool, steps: int, warmup: int, jit: str = "auto",
                precision: str = "float32", preset: str | None = None) -> dict:
    from .cli import _import_train_run
    _import_train_run()  # TensorFlow's import-time chatter kept off stderr
    import keras
    import numpy as np

    from .config import resolve
    from .fit import _compile
    from .models import build_model
    preset = preset or default_preset(name)
    cfg = resolve(preset, data="-", out="-", model=name)
    batch = batch or cfg.batch_size
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
    return {"model": name, "backend": keras.backend.backend(), "preset": preset, "precision": precision, "batch": batch,
            "augment": augment, "augmentation": cfg.augmentation if augment else None, "optimizer": cfg.optimizer,
            "params": int(model.count_params()), "jit": jit, "xla": bool(model.jit_compile), "ms_per_step": round(dt * 1e3, 1),
            "faces_per_s": round(batch / dt, 1), "split": cfg.split,
            "epoch_s": round(TRAIN_FACES[cfg.split] / (batch / dt), 1)}


def images_per_s(step, x, y, steps: int) -> float:
    step(x, y)
    step(x, y)  # warm-up: tracing and first-call allocations
    t = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return steps * len(x) / (time.perf_counter() - t)


def feature_cache_speedup(batch: int, steps: int, weights: str) -> None:
    """Print images/s of a frozen-ResNet50 train step and of its head on cached features, and the speedup."""
    from .cli import _import_train_run
    _import_train_run()
    import keras
    import numpy as np

    from .models import assemble, build_resnet50_parts
    from .registry import normalize_weights
    rng = np.random.default_rng(0)
    augment, backbone, head = build_resnet50_parts(normalize_weights(weights))
    full = assemble(augment, backbone, head)
    for m in (full, head):
        m.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    x = rng.integers(0, 256, (batch, 48, 48, 1)).astype(np.float32)
    y = rng.integers(0, 7, batch)
    feats = rng.normal(size=(batch,) + tuple(backbone.output.shape[1:])).astype(np.float16).astype(np.float32)
    naive = images_per_s(full.train_on_batch, x, y, steps)
    cached = images_per_s(head.train_on_batch, feats, y, steps * 10)
    click.echo(f"naive frozen-ResNet50 train step: {naive:8.1f} images/s (batch {batch})")
    click.echo(f"cached-feature head train step:   {cached:8.1f} images/s (batch {batch})")
    click.echo(f"speedup: {cached / naive:.1f}x  (cache cost: one backbone forward per face and view)")


def csv(kind=str):
    return lambda ctx, param, value: [kind(v) for v in value.split(",") if v.strip()]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--models", default=",".join(m for m in MODEL_NAMES if m != "resnet50"), show_default=True,
              callback=csv(), help="Comma-separated model names (resnet50 trains its head on cached features).")
@click.option("--batch", default=None, callback=lambda ctx, param, v: csv(int)(ctx, param, v) if v else [None],
              help="Comma-separated batch sizes (default: the preset's, 64 without --preset).")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="Time this preset's recipe (optimizer, augmentation, batch, split) for every model.")
@click.option("--augment", default="on,off", show_default=True, callback=csv(), help="on, off or on,off.")
@click.option("--jit", default="auto", show_default=True, callback=csv(),
              help="XLA: auto (Keras's choice), on, off, or a list like auto,on.")
@click.option("--precision", default="float32", show_default=True, callback=csv(),
              help="Keras dtype policies, e.g. float32,mixed_bfloat16 (bf16 compute, float32 weights: fast on "
                   "CPUs with AMX, emulated and slow on those without).")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="Timed steps per configuration.")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the rows here.")
@click.option("--feature-cache", is_flag=True,
              help="Instead: resnet50's frozen-backbone step against its head on cached features (first --batch).")
@click.option("--weights", default="none", show_default=True, help="--feature-cache: the backbone's weights.")
def cli(models, batch, preset, augment, jit, precision, steps, warmup, json_path, feature_cache, weights):
    """Training throughput on this machine: faces/s per model, backend, augmentation and batch size."""
    from device.provenance import machine_info, now_iso
    if feature_cache:
        return feature_cache_speedup(batch[0] or 64, steps, weights)
    rows = []
    click.echo(f"{'model':14s} {'backend':10s} {'precision':>14s} {'batch':>5s} {'augment':>7s} {'xla':>5s} "
               f"{'ms/step':>8s} {'faces/s':>8s} {'s/epoch':>8s}")
    for name, size, aug, j, p in itertools.product(models, batch, augment, jit, precision):
        r = time_config(name, size, aug == "on", steps, warmup, j, p, preset)
        rows.append(r)
        click.echo(f"{r['model']:14s} {r['backend']:10s} {p:>14s} {r['batch']:5d} {aug:>7s} {str(r['xla']):>5s} "
                   f"{r['ms_per_step']:8.1f} {r['faces_per_s']:8.1f} {r['epoch_s']:8.1f}")
    if json_path:
        from device.atomic import write_json
        write_json(json_path, {"rows": rows, "machine": machine_info(), "date": now_iso()})
