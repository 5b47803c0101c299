"""The end of a training run: the kept model becomes model.keras with metadata.json, the test split is
scored once, and metrics.json and the plots are written (train/fit.py runs the epochs before it)."""
from __future__ import annotations

import shutil
from pathlib import Path

import keras

from device.atomic import atomic_path
from device.contract import as_batch
from device.metadata import make_metadata, write_metadata
from device.metrics import evaluate
from device.paths import portable_record

from . import report
from .ferplus import FERPLUS_SPLITS, LABEL_SETS
from .models import float32_copy


def save(model: keras.Model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


def kept_model(cfg, out: Path, build) -> Path:
    """The file that becomes model.keras: best.keras, or with --keep last a float32 copy of the last epoch's
    checkpoint (last.keras; checkpoint.keras holds the optimizer and, under mixed_bfloat16, bf16 layers)."""
    if cfg.keep == "best":
        return out / "best.keras"
    last = keras.models.load_model(out / "checkpoint.keras")
    if cfg.precision != "float32":
        last = float32_copy(last, build)
    save(last, out / "last.keras")
    return out / "last.keras"


def finish(cfg, out, ds, split, state, history, fp=None, build=None) -> Path:
    """Best model -> model.keras + metadata.json; score it once on the test split (FER+: majority labels); plots."""
    names = LABEL_SETS[cfg.labels]
    kept = kept_model(cfg, out, build)
    model = keras.models.load_model(kept)
    test = evaluate(lambda f: model.predict_on_batch(as_batch(f)), ds.faces[split.test], ds.labels[split.test],
                    class_names=names, batch_size=max(cfg.batch_size, 64))
    with atomic_path(out / "model.keras") as tmp:
        shutil.copyfile(kept, tmp)
    data_info = {"path": cfg.data, "sha256": ds.sha256, "split": split.kind, "test_split": split.test_name,
                 "seed": cfg.seed, "val_fraction": cfg.val_fraction, "limit": cfg.limit, "labels": cfg.labels}
    label_info = {} if fp is None else {
        "ferplus": cfg.ferplus, "ferplus_sha256": fp.votes.sha256, "label_scheme": cfg.label_scheme,
        "ferplus_split": FERPLUS_SPLITS.get(split.test_name), "left_out": fp.dropped}
    write_metadata(out, make_metadata(cfg.model, labels=names, data=portable_record({**data_info, **label_info}),
                                      params=int(model.count_params()), val_accuracy=state["best_val_accuracy"],
                                      test_accuracy=test["accuracy"]))
    metrics = {**{k: v for k, v in test.items() if k != "probs"}, "split": split.test_name,
               "label_set": cfg.labels, **({"label_scheme": cfg.label_scheme, "evaluated_on": "FER+ majority labels",
                                           "ferplus_split": FERPLUS_SPLITS.get(split.test_name)} if fp else {}),
               "epochs_run": state["epoch"], "best_epoch": state["best_epoch"], "kept": cfg.keep,
               "best_val_accuracy": state["best_val_accuracy"], "train_time_s": round(state["train_time_s"], 1),
               "n_train": len(split.train), "n_val": len(split.val), "n_test": len(split.test),
               "duplicate_groups": split.duplicate_groups, "dropped": split.dropped}
    report.write_metrics(out / "metrics.json", metrics)
    report.plot_curves(out / "curves.png", history)
    report.plot_confusion(out / "confusion.png", test["confusion"],
                          f"{cfg.model} on {split.test_name}: acc {test['accuracy']:.3f}", names)
    print(f"test ({split.test_name}, n={len(split.test)}): accuracy {test['accuracy']:.4f}, "
          f"macro-F1 {test['macro_f1']:.4f}; best val {state['best_val_accuracy']:.4f} at epoch {state['best_epoch']}"
          + (f"; kept the last epoch ({state['epoch']})" if cfg.keep == "last" else ""))
    print(f"wrote {out}")
    return out
