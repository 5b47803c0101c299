"""``python -m train bench --preset paper`` times the paper's own recipe (Adam, its augmentation, batch 32) and
prices an epoch on the random80 split, as a user measures before planning the paper's 60-epoch runs."""
from __future__ import annotations

import json

from train.bench import TRAIN_FACES
from train_cli import run_train


def test_bench_times_a_presets_recipe(tmp_path):
    out = tmp_path / "speed.json"
    r = run_train("bench", "--preset", "paper", "--models", "vanilla_cnn", "--augment", "on",
                  "--steps", "1", "--warmup", "1", "--json", out)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["preset"], row["batch"], row["optimizer"], row["augmentation"], row["split"]) == \
        ("paper", 32, "adam", "paper", "random80")
    assert abs(row["epoch_s"] - TRAIN_FACES["random80"] / row["faces_per_s"]) < 1
    assert "vanilla_cnn" in r.stdout


def test_bench_refuses_an_unknown_preset():
    r = run_train("bench", "--preset", "fastest", "--models", "vanilla_cnn")
    assert r.returncode == 2 and "fastest" in r.stderr
