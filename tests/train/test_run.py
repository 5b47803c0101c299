"""End-to-end smoke runs on sample.csv: artefacts, resume, CLI, and the contract convert relies on."""
from __future__ import annotations

import json
import os
import shlex

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from device.metadata import read_metadata  # noqa: E402
from device.paths import portable_record, portable_text  # noqa: E402
from device.provenance import record  # noqa: E402
from train.config import ConfigError, resolve  # noqa: E402
from train.data import load_fer2013, make_split  # noqa: E402
from train.fit import train_run  # noqa: E402
from train.report import read_history  # noqa: E402
from train_cli import run_train  # noqa: E402  (tests/train/train_cli.py)

ARTEFACTS = ("model.keras", "metadata.json", "config.json", "history.csv", "curves.png", "confusion.png",
             "metrics.json")


def _cfg(sample_csv, out, **kw):
    return resolve(data=str(sample_csv), out=str(out), **{"split": "random80", "epochs": 1, "batch_size": 32, **kw})


@pytest.mark.slow
def test_smoke_run_writes_every_artefact(sample_csv, tmp_path):
    out = train_run(_cfg(sample_csv, tmp_path / "run"))
    for name in ARTEFACTS:
        assert (out / name).stat().st_size > 0, name
    cfg = json.loads((out / "config.json").read_text())
    assert {"data", "split", "seed", "val_fraction", "model", "epochs", "batch_size"} <= set(cfg)
    meta = read_metadata(out / "model.keras")
    assert meta["data"]["split"] == "random80" and meta["data"]["test_split"] == "random80-test"
    assert meta["data"]["sha256"] == load_fer2013(sample_csv).sha256
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "random80-test" and metrics["epochs_run"] == 1 and "probs" not in metrics
    # What convert does: recover the test faces from config.json and score the saved model on them.
    ds = load_fer2013(cfg["data"])
    split = make_split(ds, cfg["split"], cfg["seed"], cfg["val_fraction"])
    assert metrics["n"] == len(split.test)
    model = keras.models.load_model(out / "model.keras")
    probs = model.predict_on_batch(ds.faces[split.test[:4], ..., None].astype(np.float32))
    assert probs.shape == (4, 7)
    with pytest.raises(ConfigError, match="--resume"):
        train_run(_cfg(sample_csv, out))  # never clobbers a finished run


@pytest.mark.slow
def test_resume_continues_from_saved_epoch(sample_csv, tmp_path):
    out = tmp_path / "run"
    train_run(_cfg(sample_csv, out, limit=100), provenance=record("python -m train", ["--limit", "100"]))
    assert json.loads((out / "config.json").read_text())["provenance"]["argv"] == ["--limit", "100"]
    first = read_history(out / "history.csv")
    # config.json holds a provenance block now: --resume compares only the keys that decide the run
    train_run(_cfg(sample_csv, out, limit=100, epochs=2, resume=True),
              provenance=record("python -m train", ["--limit", "100", "--epochs", "2", "--resume"]))
    prov = json.loads((out / "config.json").read_text())["provenance"]
    assert prov["argv"] == ["--limit", "100"]  # the command that remakes the run; the continuation beside it
    assert [r["argv"] for r in prov["resumed"]] == [["--limit", "100", "--epochs", "2", "--resume"]]
    hist = read_history(out / "history.csv")
    assert [h["epoch"] for h in hist] == [1, 2] and hist[0] == first[0]
    assert json.loads((out / "state.json").read_text())["epoch"] == 2
    with pytest.raises(ConfigError, match="seed"):
        train_run(_cfg(sample_csv, out, limit=100, epochs=3, resume=True, seed=9))


@pytest.mark.slow
def test_bf16_trains_resumes_and_saves_a_float32_model(sample_csv, tmp_path):
    """--precision mixed_bfloat16: bf16 math while training (the checkpoint keeps the policy for --resume),
    a float32 model.keras with the same weights for convert, teachers and --init-from."""
    import train.layers  # noqa: F401  (registers RandomErasing for load_model)
    out = tmp_path / "bf16"
    kw = dict(limit=100, model="vgg_cnn", erasing=0.5, precision="mixed_bfloat16")
    train_run(_cfg(sample_csv, out, **kw))
    ckpt = keras.models.load_model(out / "checkpoint.keras", compile=False)
    assert ckpt.get_layer("probs").dtype_policy.name == "float32"  # the softmax stays float32
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in ckpt.layers}
    model = keras.models.load_model(out / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    for a, b in zip(model.get_weights(), ckpt.get_weights()):
        np.testing.assert_array_equal(a, b)  # one epoch: the best model is the checkpoint
    assert json.loads((out / "config.json").read_text())["precision"] == "mixed_bfloat16"
    train_run(_cfg(sample_csv, out, epochs=2, resume=True, **kw))
    assert json.loads((out / "state.json").read_text())["epoch"] == 2
    with pytest.raises(ConfigError, match="precision was 'mixed_bfloat16'"):
        train_run(_cfg(sample_csv, out, epochs=3, resume=True, **{**kw, "precision": "float32"}))
    with pytest.raises(ConfigError, match="resnet50 trains in float32"):
        _cfg(sample_csv, out, model="resnet50", precision="mixed_bfloat16")


@pytest.mark.slow
def test_init_seed_is_another_member_on_the_same_split(sample_csv, tmp_path):
    """--init-seed changes the weights, never the split: what convert --member needs of an ensemble's runs."""
    a = train_run(_cfg(sample_csv, tmp_path / "a", limit=60, model="vanilla_cnn"))
    b = train_run(_cfg(sample_csv, tmp_path / "b", limit=60, model="vanilla_cnn", init_seed=5))
    assert json.loads((b / "config.json").read_text())["init_seed"] == 5
    assert read_metadata(a)["data"] == read_metadata(b)["data"]
    assert json.loads((a / "metrics.json").read_text())["n"] == json.loads((b / "metrics.json").read_text())["n"]
    wa, wb = (keras.models.load_model(d / "model.keras").get_layer(index=3).get_weights()[0] for d in (a, b))
    assert wa.shape == wb.shape and not np.allclose(wa, wb)
    with pytest.raises(ConfigError, match="init_seed"):
        train_run(_cfg(sample_csv, b, limit=60, model="vanilla_cnn", epochs=2, resume=True))


@pytest.mark.slow
def test_resnet50_cached_then_fine_tune(sample_csv, tmp_path):
    out = train_run(_cfg(sample_csv, tmp_path / "r50", model="resnet50", weights="none", limit=40,
                         batch_size=8, cache_views=2, fine_tune_epochs=1))
    assert sorted(p.name for p in (out / "cache").iterdir()) == ["train_view0.npy", "train_view1.npy", "val.npy"]
    assert [h["phase"] for h in read_history(out / "history.csv")] == ["frozen", "fine_tune"]
    model = keras.models.load_model(out / "model.keras")
    assert model.input.shape[1:] == (48, 48, 1) and model.output.shape[1:] == (7,)


@pytest.mark.slow
def test_cli_smoke(sample_csv, tmp_path):
    args = ["--data", str(sample_csv), "--out", str(tmp_path / "cli"), "--split", "random80", "--epochs", "1",
            "--limit", "60", "--model", "residual_cnn", "--preset", "paper"]
    r = run_train(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ARTEFACTS:
        assert (tmp_path / "cli" / name).exists(), name
    cfg = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert cfg["lr"] == 1e-4 and cfg["class_weights"] == "paper" and cfg["epochs"] == 1
    # what ran, as typed, and the config it resolved to
    prov = cfg.pop("provenance")
    assert prov["command"] == portable_text("python -m train " + shlex.join(args))  # paths as records hold them
    assert prov["argv"] == portable_record(args)
    assert prov["options"] == cfg and {"versions", "machine", "date", "cwd"} <= set(prov)


@pytest.mark.parametrize("args, code, words", [
    (("--data", "missing.csv", "--out", "x"), 3, "missing.csv: no such file"),
    (("--data", "{sample}", "--out", "x", "--split", "bogus"), 2, "--split"),
    (("--data", "{sample}", "--out", "x", "--epochs", "-1"), 2, "--epochs"),
    (("--data", "{sample}", "--out", "x", "--weights", "nope.h5"), 3, "--weights nope.h5: no such file"),
    pytest.param(("--data", "{bad}", "--out", "{out}"), 3, "bad.csv:3: ", marks=pytest.mark.slow),  # loads Keras
])
def test_cli_errors_are_one_line(sample_csv, tmp_path, args, code, words):
    bad = tmp_path / "bad.csv"
    bad.write_text("emotion,pixels,Usage\n0," + " ".join(["1"] * 2304) + ",Training\n0,1 2,Training\n")
    args = [a.format(sample=sample_csv, bad=bad, out=tmp_path / "o") for a in args]
    r = run_train(*args)
    assert r.returncode == code, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and words in lines[-1], r.stderr
    assert "Traceback" not in r.stderr
