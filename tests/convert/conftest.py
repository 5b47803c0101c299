"""Fixtures for convert/: a tiny run folder, trained for a moment on the real sample faces.

The run folder has what train/ writes (model.keras, metadata.json, config.json), with
a tiny model built here so the tests stay fast; it includes the augmentation layers (must
leave no op in the export) and the ScaledL2Normalize layer of the resnet50 head (must
quantize to int8).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SPLIT = "random80"   # sample.csv holds Training rows only
SEED = 0
VAL_FRACTION = 0.1
CALIB = 100          # the sample's random80 training side has ~300 faces


def tiny_model(seed: int = 0):
    from convert import quiet_tensorflow
    quiet_tensorflow()
    import keras
    from keras import layers

    from device.contract import INPUT_SHAPE, NUM_CLASSES
    from train.layers import RandomShift, ScaledL2Normalize

    keras.utils.set_random_seed(seed)
    inp = keras.Input(INPUT_SHAPE, dtype="float32", name="face")
    x = layers.RandomFlip("horizontal", seed=seed)(inp)
    x = RandomShift(4, seed=seed)(x)  # the best recipe's crop augmentation
    x = layers.Rescaling(1.0 / 255.0)(x)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(16, activation="relu")(x)
    x = ScaledL2Normalize()(x)
    out = layers.Dense(NUM_CLASSES, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="tiny_cnn")


def make_run(run_dir: Path, data_path: Path, epochs: int = 25, seed: int = SEED, init_seed: int | None = None,
             build=tiny_model, name: str = "tiny_cnn") -> Path:
    """A run folder as train/ leaves it: model.keras, metadata.json, config.json, metrics.json.
    ``seed`` sets the split (and the weights unless ``init_seed`` is given: another member of an ensemble);
    ``build(seed)`` makes the network, recorded as model ``name`` (a real one: train.models.build_model)."""
    from device.atomic import write_json
    from device.contract import as_batch
    from device.metadata import make_metadata, write_metadata
    from device.provenance import record
    from train.data import load_fer2013, make_split

    ds = load_fer2013(data_path)
    split = make_split(ds, SPLIT, seed, VAL_FRACTION)
    model = build(seed if init_seed is None else init_seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(as_batch(ds.faces[split.train]), ds.labels[split.train], epochs=epochs, batch_size=32, verbose=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    data_info = {"path": str(data_path), "sha256": ds.sha256, "split": split.kind, "test_split": split.test_name,
                 "seed": seed, "val_fraction": VAL_FRACTION, "limit": None}
    write_metadata(run_dir, make_metadata(name, data=data_info))
    # with the provenance block train writes, which convert must read past
    write_json(run_dir / "config.json", {"data": str(data_path), "model": name, "split": SPLIT,
                                         "seed": seed, "val_fraction": VAL_FRACTION, "limit": None,
                                         "provenance": record("python -m train", ["--data", str(data_path)])})
    write_json(run_dir / "metrics.json", {"note": "tiny test model"})
    return run_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, sample_csv) -> Path:
    """A trained tiny run folder (shared; tests that modify a run copy it first)."""
    return make_run(tmp_path_factory.mktemp("run") / "tiny", sample_csv)


@pytest.fixture(scope="session")
def converted(tiny_run, tmp_path_factory):
    """``pipeline.run`` on the tiny run with --int8 into a separate folder; returns the ConvertResult."""
    from convert.pipeline import run
    out = tmp_path_factory.mktemp("out") / "converted"
    return run(tiny_run, int8=True, out=out, calib=CALIB, latency_runs=5, eval_faces=50, progress=False)


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst)
    return dst


@pytest.fixture
def new_run():
    """``make_run`` itself, for tests that need more run folders (ensemble members, another split)."""
    return make_run
