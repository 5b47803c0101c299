"""Fake run folders for the tests of ``python -m convert results``, scripts/reproduce.py and ``python -m convert
ship``: no Keras, seconds.

The fake files copy the structure of what the real stages write (``python -m train`` -> config.json
with its provenance, metadata.json, metrics.json, history.csv, state.json; ``python -m convert RUN
--int8`` -> report.json; ``device/run.py bench --json`` -> bench.json), trimmed to the keys the
scripts read.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
from convert import results  # noqa: E402  (what python -m convert results runs)
from convert.results import cli as results_cli  # noqa: E402
from device.contract import LABELS  # noqa: E402
from device.errors import run_click  # noqa: E402
from convert import reproduce  # noqa: E402  (what scripts/reproduce.py runs)
from train.config import resolve  # noqa: E402

RANDOM_INIT = results.RANDOM_INIT


def render(records: Path = results.RECORDS, roots: tuple[Path, ...] = ()) -> str:
    """docs/RESULTS.md's text from these records and run folders, as ``python -m convert results`` writes it."""
    return results.render(results.collect(records, roots))


def make_results(argv: list[str]) -> int:
    """``python -m convert results ARGV``'s exit code, in this process."""
    return run_click(results_cli.cli, argv, prog_name=results_cli.PROG)
MACHINE = {"hostname": "vm", "platform": "Linux-6.18-x86_64-with-glibc2.36", "machine": "x86_64",
           "processor": "Intel(R) Xeon(R) Processor", "cpu_count": 2, "python": "3.11.7"}
VERSIONS = {"tensorflow-cpu": "2.21.0", "keras": "3.15.1", "ai-edge-litert": "2.3.0", "numpy": "2.4.6", "click": "8.3.0"}
T0 = 1796000000  # 2026-11-30, the fake runs' clock: trained at T0, converted at T0 + 60, benched at T0 + 120


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


def prov(prog: str, argv: list[str], t: float = T0) -> dict:
    """A provenance block as device.provenance.record writes it, on a fixed machine and date."""
    return {"command": " ".join([prog, *argv]), "argv": argv, "cwd": "/work/ferlite", "options": {},
            "versions": VERSIONS, "machine": MACHINE, "date": iso(t)}


def scores(acc: float, f1: float, n: int = 84, shift: float = 0.0) -> dict:
    per_class = {c: {"precision": acc, "recall": min(1.0, max(0.0, acc + shift * (i - 3) / 10)), "f1": f1,
                     "support": n // 7} for i, c in enumerate(LABELS)}
    return {"n": n, "accuracy": acc, "macro_f1": f1, "per_class": per_class,
            "confusion": [[n // 49] * 7 for _ in LABELS], "labels": LABELS}


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=2), encoding="utf-8")
    return path


def tflite(name: str, acc: float, n: int, size: int, median: float) -> dict:
    m = {**scores(acc, acc - 0.05, n, 0.5), "file": f"model_{name}.tflite", "size_bytes": size,
         "graph": {"n_ops": 17, "n_float_ops": 0 if name == "int8" else 15, "float_ops": [],
                   "int8_end_to_end": name == "int8"},
         "latency": [{"threads": 1, "runs": 50, "warmup": 10, "median_ms": median, "p90_ms": median * 1.3,
                      "fps": round(1000 / median, 1)}, {"threads": 2, "runs": 50, "warmup": 10,
                                                        "median_ms": median * 0.8, "fps": round(1250 / median, 1)}]}
    if name == "int8":
        m["drop_vs_float32"] = {"accuracy_pp": -0.25, "macro_f1_pp": 0.5,
                                "per_class_recall_pp": {c: round(0.1 * i, 3) for i, c in enumerate(LABELS)}}
        m["vs_float32"] = {"top1_agreement": 0.976, "mean_abs_prob_delta": 0.0007}
    return m


def make_report(run: Path, out: Path, acc: float, split: str, n: int, flip: bool = False, members=()) -> None:
    test_name = "random80-test" if split == "random80" else "PublicTest"
    argv = [f"runs/{run.name}", "--int8", *(["--flip-tta"] if flip else []),  # as typed at the repository root
            *(a for m in members for a in ("--member", f"runs/{m}"))]
    write(out / "report.json", {
        "format": "ferlite-convert-report/1", "date": iso(T0 + 60), "machine": {**MACHINE, "processor": None},
        "versions": {"tensorflow": "2.21.0", "keras": "3.15.1", "ai_edge_litert": "2.3.0", "numpy": "2.4.6"},
        "run": {"dir": str(run), "flip_tta": flip, "members": [f"runs/{m}" for m in members]}, "evaluation": {"split": test_name, "split_kind": split, "n": n},
        "calibration": {"n": 300, "seed": 0},
        "models": {"keras": {**scores(acc, acc - 0.05, n), "file": "model.keras", "size_bytes": 14130516},
                   "float32": tflite("float32", acc, n, 4664820, 1.49),
                   "int8": tflite("int8", acc + 0.0025, n, 1198240, 0.256)},
        "gate": None, "notes": [], "provenance": prov("python -m convert", argv, T0 + 60)})


def make_bench(run: Path, out: Path, acc: float, n: int, test_name: str) -> None:
    def model(name, median, fps):
        return {"path": str(out / f"model_{name}.tflite"), "accuracy": acc, "macro_f1": acc - 0.05,
                "latency": {"1": {"median_ms": median, "p90_ms": median * 2, "fps": round(1000 / median, 1),
                                  "runs": 200}},
                "loop": {"1": {"fps": fps, "frames": 115, "faces": 112,
                               "latency_ms": {"capture": 8.8, "detect": 27.7, "classify": 4.9, "per_frame": 41.6}}}}
    d = f"runs/{run.name}"
    argv = ["--float", f"{d}/model_float32.tflite", "--int8", f"{d}/model_int8.tflite", "--faces", f"{d}/eval_faces.npz",
            "--video", "../shared/data/faces/fer_test.mp4", "--threads", "1", "--json", f"{d}/bench.json"]
    write(out / "bench.json", {"faces": {"path": str(out / "eval_faces.npz"), "n": n, "split": test_name},
                               "models": {"float32": model("float32", 1.65, 24.0), "int8": model("int8", 0.263, 26.75)},
                               "threads": [1], "video": "../shared/data/faces/fer_test.mp4",
                               "provenance": prov("python device/run.py bench", argv, T0 + 120)})


def make_run(root: Path, name: str, model: str = "vanilla_cnn", split: str = "random80", preset: str = "paper",
             weights: str | None = None, epochs: int = 7, acc: float = 0.42, report: bool = True,
             bench: bool = True, flip: bool = False, archived: bool = False, ensemble: tuple = ()) -> Path:
    """A finished run folder (``archived``: as make_results --archive leaves it, archive.json instead of a model)."""
    run = root / name
    data = "../shared/data/fer2013/sample.csv"
    test_name, n = ("random80-test", 84) if split == "random80" else ("PublicTest", 3589)
    cfg = resolve(preset, data=data, model=model, out=f"runs/{name}", epochs=epochs, split=split, weights=weights)
    argv = ["--data", data, "--model", model, "--preset", preset, "--epochs", str(epochs), "--split", split,
            *(["--weights", weights] if weights else []), "--out", f"runs/{name}"]
    write(run / "config.json", {**cfg.to_dict(), "provenance": prov("python -m train", argv)})
    write(run / "metadata.json", {
        "format": "ferlite-metadata/1", "model": model, "labels": LABELS, "params": 1167015,
        "data": {"path": data, "sha256": "11f7da2a6a3c26351b9d6638fddb63074092af21f4f54a4fdea4f300536e9d89",
                 "split": split, "test_split": test_name, "seed": 0, "val_fraction": 0.1, "limit": None}})
    write(run / "state.json", {"epoch": epochs, "best_val_accuracy": acc + 0.01, "best_epoch": epochs,
                               "train_time_s": 14.7})
    write(run / "history.csv", "epoch,phase,accuracy,loss,val_accuracy,val_loss,lr\n" + "".join(
        f"{e},train,{0.3 + 0.01 * e},0.9,{acc},1.9,0.0001\n" for e in range(1, epochs + 1)))
    write(run / "metrics.json", {**scores(acc, acc - 0.05, n), "split": test_name, "epochs_run": epochs,
                                 "best_epoch": epochs, "best_val_accuracy": acc + 0.01, "train_time_s": 14.7,
                                 "n_train": 301, "n_val": 35, "n_test": n})
    if report:
        make_report(run, run, acc, split, n)
    if bench:
        make_bench(run, run, acc, n, test_name)
    if flip:
        make_report(run, run / "flip-tta", acc + 0.008, split, n, flip=True)
    if ensemble:  # convert RUN --int8 --flip-tta --member OTHER...
        make_report(run, run / "ensemble-flip-tta", acc + 0.02, split, n, flip=True, members=ensemble)
    if archived:
        write(run / "archive.json", {"format": "ferlite-records/1", "from": f"runs/{name}", "model_keras_bytes": 14130516,
                                     "mtimes": {"model.keras": iso(T0), "metrics.json": iso(T0), "report.json":
                                                iso(T0 + 60), "bench.json": iso(T0 + 120)}})
        return run
    (run / "model.keras").write_bytes(b"PK\x03\x04 fake keras zip")
    for f in ("model_float32.tflite", "model_int8.tflite", "eval_faces.npz", "report.md") if report else ():
        (run / f).write_bytes(b"x" * 100)
    for f, dt in (("model.keras", 0), ("metrics.json", 0), ("model_float32.tflite", 60), ("model_int8.tflite", 60),
                  ("eval_faces.npz", 60), ("report.md", 60), ("report.json", 60), ("bench.json", 120)):
        if (run / f).is_file():
            os.utime(run / f, (T0 + dt, T0 + dt))
    return run


PEER = {"name": "fer 25.10.3 mini-Xception", "split": "PublicTest", "n": 3589, "input": "64x64 gray, resized from 48x48",
        "params": 58423, "keras": {"accuracy": 0.6550571189746448, "macro_f1": 0.62},
        "tflite": {"accuracy": 0.6536639732516021}, "tflite_bytes": 93160, "tflite_latency_ms_1thread": 0.44,
        "machine": "x86_64, 2 cores", "date": "2026-11-28",
        "command": "python scripts/docs/peer_fer.py --data ../shared/data/fer2013/fer2013.csv.gz --out runs/peer_fer"}


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """An empty working folder (records/, runs/ inside it), made the current one so paths show short."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "records").mkdir()
    (tmp_path / "runs").mkdir()
    return tmp_path


def summary_rows(text: str) -> list[str]:
    block = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    return [line for line in block.splitlines() if line.startswith("| ") and not line.startswith(("| model", "| ---"))]


def row_for(text: str, needle: str) -> str:
    rows = [r for r in summary_rows(text) if needle in r]
    assert len(rows) == 1, (needle, summary_rows(text))
    return rows[0]



def script(name: str, *args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in reproduce.ENV}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120)


def ship(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m convert ship ARGS``, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "convert", "ship", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
