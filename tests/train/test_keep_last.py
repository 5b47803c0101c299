"""--keep last: model.keras is the last epoch's weights (in float32 under mixed_bfloat16), not the epoch best
on clean validation faces; a finished run can switch with --resume --keep last."""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from train.config import ConfigError, resolve  # noqa: E402
from train.fit import train_run  # noqa: E402


def _cfg(sample_csv, out, **kw):
    return resolve(data=str(sample_csv), out=str(out), **{"split": "random80", "batch_size": 32, "limit": 100,
                                                          "model": "vgg_cnn", "precision": "mixed_bfloat16", **kw})


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.mark.slow
def test_keep_last_saves_the_last_epoch_in_float32(sample_csv, tmp_path):
    out = train_run(_cfg(sample_csv, tmp_path / "run", epochs=2, lr=0.5))  # a rate that makes epochs differ
    best = keras.models.load_model(out / "model.keras")
    out = train_run(_cfg(sample_csv, out, epochs=2, keep="last", resume=True))
    last, checkpoint = (keras.models.load_model(out / f) for f in ("model.keras", "checkpoint.keras"))
    assert {w.dtype for w in last.weights} == {"float32"} and last.dtype_policy.name == "float32"
    np.testing.assert_array_equal(last.get_layer("probs").get_weights()[0],
                                  checkpoint.get_layer("probs").get_weights()[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kept"] == "last" and metrics["epochs_run"] == 2
    if metrics["best_epoch"] != 2:  # the last epoch was not the best one: the two files differ
        assert not _same(best, last)


def test_keep_last_is_refused_for_the_frozen_backbone(sample_csv, tmp_path):
    with pytest.raises(ConfigError, match="--keep last"):
        _cfg(sample_csv, tmp_path / "r", model="resnet50", precision="float32", keep="last")
