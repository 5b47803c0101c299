"""train --init-from (train/warm_start.py): a FER+ run started from a FER2013 run's weights."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")

from device.contract import LABELS as FER2013_LABELS  # noqa: E402
from train.ferplus import LABELS  # noqa: E402
from train.models import build_model  # noqa: E402
from train.warm_start import WarmStartError, transfer_weights  # noqa: E402
from train_cli import run_train  # noqa: E402  (tests/train/train_cli.py)

ROOT = Path(__file__).resolve().parents[2]


def test_a_ferplus_net_starts_as_the_fer2013_net_on_the_shared_labels():
    """Every layer copied; the head column by column, so over FER2013's seven labels the 8-class net gives
    the 7-class net's probabilities exactly (renormalised), and Contempt's column keeps its initialisation."""
    src = build_model("vgg_cnn", augment=False, seed=1, num_classes=7)
    for w in src.weights:  # move off the initialisation, BatchNorm statistics included
        w.assign(w.numpy() + np.random.default_rng(0).normal(0, 0.05, w.shape).astype("float32"))
    dst = build_model("vgg_cnn", augment=False, seed=2, num_classes=8)
    contempt_before = dst.get_layer("probs").get_weights()[0][:, 7].copy()
    summary = transfer_weights(src, dst, FER2013_LABELS, LABELS)
    assert "7 of 8 outputs" in summary and "Contempt" in summary
    faces = np.random.default_rng(1).uniform(0, 255, (6, 48, 48, 1)).astype("float32")
    p7, p8 = src.predict(faces, verbose=0), dst.predict(faces, verbose=0)
    np.testing.assert_allclose(p8[:, :7] / p8[:, :7].sum(1, keepdims=True), p7, atol=1e-5)
    np.testing.assert_array_equal(dst.get_layer("probs").get_weights()[0][:, 7], contempt_before)


def test_other_networks_are_refused():
    with pytest.raises(WarmStartError, match="different layers"):
        transfer_weights(build_model("vgg_cnn", augment=False, num_classes=7),
                         build_model("vanilla_cnn", augment=False, num_classes=8), FER2013_LABELS, LABELS)


@pytest.mark.slow
def test_cli_trains_ferplus_from_a_fer2013_run_and_refuses_one_that_held_out_other_faces(sample_ferplus, tmp_path):
    data = sample_ferplus / "sample.csv"
    common = ("--data", data, "--split", "random80", "--epochs", "1", "--limit", "120", "--model", "vanilla_cnn")
    first = tmp_path / "fer2013"
    r = run_train(*common, "--out", first)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "ferplus"
    r = run_train(*common, "--out", out, "--labels", "ferplus", "--label-scheme", "soft", "--init-from", first)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"started from {first}" in r.stdout and "7 of 8 outputs (new: Contempt)" in r.stdout
    assert json.loads((out / "config.json").read_text())["init_from"] == str(first)
    assert json.loads((out / "metadata.json").read_text())["labels"] == list(LABELS)

    other = tmp_path / "other-seed"
    r = run_train(*common, "--out", other, "--labels", "ferplus", "--seed", "5", "--init-from", first)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert "held out other faces (seed was 0)" in lines[0]
    assert not (other / "config.json").exists()
    r = run_train(*common, "--out", tmp_path / "missing", "--init-from", tmp_path / "nowhere")
    assert r.returncode == 3 and "no model.keras there" in r.stderr  # a missing file: bad input
