"""scripts/make_results.py (docs/RESULTS.md from the runs' records), and scripts/reproduce.py's and
scripts/make_default_model.py's skip, ship and refuse logic, on small fake run folders: no Keras, seconds.

The fake files copy the structure of what the real stages write (``python -m train`` -> config.json
with its provenance, metadata.json, metrics.json, history.csv, state.json; ``python -m convert RUN
--int8`` -> report.json; ``device/run.py bench --json`` -> bench.json), trimmed to the keys the
scripts read. The rendered document is compared with tests/data/results_expected.md; after a
deliberate change to the output, rewrite it with ``FERLITE_UPDATE_EXPECTED=1 pytest tests/test_results.py``
and read the diff.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "tests" / "data" / "results_expected.md"
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
from device.contract import LABELS  # noqa: E402
from train.config import resolve  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, mod)
    spec.loader.exec_module(mod)
    return sys.modules[name]


mr = _load("make_results")
reproduce = _load("reproduce")
import results  # noqa: E402  (scripts/results/: what make_results.py runs)

RANDOM_INIT = results.RANDOM_INIT


def render(records: Path = results.RECORDS, roots: tuple[Path, ...] = ()) -> str:
    """docs/RESULTS.md's text from these records and run folders, as make_results.py writes it."""
    return results.render(results.collect(records, roots))
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
        "command": "python scripts/peer_fer.py --data ../shared/data/fer2013/fer2013.csv.gz --out runs/peer_fer"}


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


# --- make_results.py ----------------------------------------------------------------------------

def test_rendered_document_matches_the_expected_file(work):
    """Every section and case at once: the paper's protocol, the official split with its flip-TTA conversion, a
    random-init ResNet50 without a bench, our vgg_cnn with the best preset, an unfinished run, the peer."""
    records = work / "records"
    make_run(records, "vanilla_cnn-paper-random80", epochs=7, acc=0.42, archived=True)
    write(records / "vanilla_cnn-paper-random80" / "reproduce.json", {
        "format": "ferlite-reproduce/2", "git": {"commit": "614d3778b78c7108da44b1e57674cb126e24b507", "dirty": True},
        "provenance": prov("python scripts/reproduce.py", ["../shared/data/fer2013/sample.csv", "--epochs", "7"])})
    make_run(records, "vanilla_cnn-official", split="official", preset="default", epochs=40, acc=0.628, flip=True,
             archived=True)
    make_run(records, "resnet50-paper-random80-randinit", "resnet50", weights="none", epochs=20, acc=0.34,
             bench=False, archived=True)
    make_run(records, "vgg_cnn-best", "vgg_cnn", split="official", preset="best", epochs=60, acc=0.66, archived=True,
             ensemble=("vgg_cnn-best-init1",))
    write(records / "peer_fer" / "peer.json", PEER)
    going = work / "runs" / "residual_cnn-official"
    write(going / "config.json", {"model": "residual_cnn", "epochs": 40, "fine_tune_epochs": 0, "split": "official"})
    write(going / "state.json", {"epoch": 21, "best_val_accuracy": 0.6123, "best_epoch": 17})

    text = render(Path("records"), (Path("runs"),))
    if os.environ.get("FERLITE_UPDATE_EXPECTED"):
        EXPECTED.parent.mkdir(exist_ok=True)
        EXPECTED.write_text(text, encoding="utf-8")
    assert text == EXPECTED.read_text(encoding="utf-8"), "rendered output differs from tests/data/results_expected.md"


def test_committed_results_regenerate_from_the_committed_records(monkeypatch):
    """docs/RESULTS.md is what `python scripts/make_results.py` makes from docs/runs/ in a clean checkout."""
    monkeypatch.chdir(ROOT)
    assert render() == (ROOT / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    for folder in (p for p in results.RECORDS.iterdir() if (p / "metrics.json").is_file()):
        assert not [f for f in folder.rglob("*") if f.suffix in (".keras", ".tflite", ".npz")], folder


def test_archive_keeps_every_figure_and_no_model(work):
    runs = work / "runs"
    make_run(runs, "vanilla_cnn-official", split="official", preset="default", acc=0.6, flip=True,
             ensemble=("vanilla_cnn-official-init1",))
    make_run(runs, "resnet50-paper-random80-randinit", "resnet50", weights="none", acc=0.3, bench=False)
    write(runs / "peer_fer" / "peer.json", PEER)
    live = render(Path("records"), (Path("runs"),))
    assert mr.main(["--runs", "runs", "--archive", "--records", "records", "--out", "R.md"]) == 0
    archived = (work / "R.md").read_text(encoding="utf-8")
    # the same document, apart from where it says the records and the peer came from
    assert archived.replace("`records/peer_fer", "`runs/peer_fer").replace("--out R.md", "--out docs/RESULTS.md") \
        == live.replace(" and the run folders in `runs`", "")
    kept = sorted(str(p.relative_to(work / "records")) for p in (work / "records").rglob("*") if p.is_file())
    assert kept == sorted(["peer_fer/peer.json", *(f"{r}/{f}" for r in ("resnet50-paper-random80-randinit",
                                                                         "vanilla_cnn-official")
                                                   for f in ("archive.json", "config.json", "history.csv",
                                                             "metadata.json", "metrics.json", "report.json")),
                           "vanilla_cnn-official/bench.json", "vanilla_cnn-official/flip-tta/report.json",
                           "vanilla_cnn-official/ensemble-flip-tta/report.json"])
    # the run no longer has its bench: neither has its archive
    (runs / "vanilla_cnn-official" / "bench.json").unlink()
    assert mr.main(["--runs", "runs", "--archive", "--records", "records", "--out", "R.md"]) == 0
    assert not (work / "records" / "vanilla_cnn-official" / "bench.json").exists()


def test_missing_pieces_show_not_run(work):
    make_run(work / "records", "vanilla_cnn-paper-random80", report=False, bench=False)
    text = render(Path("records"))
    cells = [c.strip() for c in row_for(text, "vanilla_cnn-paper-random80").strip("|").split("|")]
    assert cells[4] == "42.0%" and cells[5:] == ["not run"] * 7  # Keras accuracy from metrics.json
    for model in ("Residual+CNN", "ResNet50+CNN"):
        assert row_for(text, f"| {model} |").count("not run") == 11
    assert "Conversion: not run" in text and "Bench: not run" in text and "converted not run" in text
    assert "# conversion: not run (no report.json)" in text and "| peer: `fer` mini-Xception |" in text


@pytest.mark.parametrize("missing", ["report.json", "bench.json", "history.csv", "config.json", "metadata.json",
                                     "state.json", "model.keras"])
def test_never_crashes_on_a_missing_file(work, missing):
    run = make_run(work / "runs", "resnet50-paper-random80-randinit", "resnet50", weights="none")
    (run / missing).unlink()
    text = render(Path("records"), (Path("runs"),))
    assert "resnet50-paper-random80-randinit" in text
    if missing == "config.json":
        assert "not recorded (no config.json)" in text and "# training: not run (no config.json)" in text


@pytest.mark.parametrize("content", ["{not json", "[]", "", "null"])
def test_never_crashes_on_an_unreadable_file(work, content):
    run = make_run(work / "runs", "vanilla_cnn-paper-random80")
    for f in ("report.json", "bench.json", "reproduce.json", "archive.json"):
        write(run / f, content)
    text = render(Path("records"), (Path("runs"),))
    assert "not run" in row_for(text, "vanilla_cnn-paper-random80")
    assert "> warning: report.json unreadable" in text if content in ("{not json", "") else \
        "> warning: report.json is not a JSON object" in text
    write(run / "metrics.json", "{")
    assert "> warning: metrics.json unreadable" in render(Path("records"), (Path("runs"),))


def test_stale_report_is_flagged(work):
    run = make_run(work / "runs", "vanilla_cnn-paper-random80")
    os.utime(run / "model.keras", (T0 + 600, T0 + 600))
    text = render(Path("records"), (Path("runs"),))
    assert "report.json is older than model.keras" in text and "bench.json is older than model.keras" in text


def test_cli_is_deterministic_and_refuses_a_missing_folder(work, capsys):
    make_run(work / "records", "vanilla_cnn-paper-random80", archived=True)
    args = ["--records", "records", "--out", "docs/RESULTS.md"]
    assert mr.main(args) == 0
    first = (work / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    assert mr.main(args) == 0 and (work / "docs" / "RESULTS.md").read_text(encoding="utf-8") == first
    assert mr.main(["--runs", "nope", *args]) == 3
    assert capsys.readouterr().err.strip().endswith("error: --runs nope: no such folder")


# --- scripts/reproduce.py and scripts/make_default_model.py (no Keras: nothing to redo) ---------

def script(name: str, *args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in (*reproduce.ENV, "DEST", "MAX_BYTES", "FLIP_TTA")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_reproduce_skips_finished_stages_and_archives_them(work):
    run = make_run(work / "runs", "vanilla_cnn-paper-random80", epochs=1)
    data, clip = work / "fer.csv", work / "clip.mp4"
    data.write_text("emotion,pixels,Usage\n")
    clip.write_bytes(b"")
    before = {f.name: f.stat().st_mtime for f in run.iterdir()}
    p = script("reproduce.py", "fer.csv", "clip.mp4", "--epochs", "1", cwd=work,
               env={"RUNS": "runs", "MODELS": "vanilla_cnn", "RESULTS": "R.md", "RECORDS": "records"})
    assert p.returncode == 0, p.stderr
    for stage in ("train:", "convert:", "bench:"):
        assert any(line.startswith(stage) and line.endswith("skipped") for line in p.stderr.splitlines()), p.stderr
    assert {f.name: f.stat().st_mtime for f in run.iterdir()} == before  # nothing was redone
    assert "`vanilla_cnn-paper-random80`" in (work / "R.md").read_text(encoding="utf-8")
    assert (work / "records" / "vanilla_cnn-paper-random80" / "report.json").is_file()


def test_reproduce_refuses_bad_settings_before_any_stage(work):
    (work / "fer.csv").write_text("x")
    safe = {"RUNS": "r", "RESULTS": "R.md", "RECORDS": "rec"}
    for env, args, code, msg in (({"MODELS": "vgg16"}, [], 2, "unknown model 'vgg16'"),
                                 ({}, ["--split", "public"], 2, "SPLIT must be"),
                                 ({"EPOCHS": "ten"}, [], 2, "EPOCHS must be"),
                                 ({"EPOCHS": "0"}, [], 2, "EPOCHS must be"),
                                 ({}, ["fer.csv", "missing.mp4"], 3, "clip not found"),
                                 ({}, ["missing.csv", "fer.csv"], 3, "data not found")):
        p = script("reproduce.py", *(args or ["fer.csv", "fer.csv"]), env={**safe, **env}, cwd=work)
        assert p.returncode == code and msg in p.stderr and "Traceback" not in p.stderr, (env, args, p.stderr)
    assert not any((work / d).exists() for d in ("r", "R.md", "rec"))


def test_reproduce_records_the_command_that_gives_its_config(work):
    """What reproduce.py records as the training command parses, through train's own CLI, to the config it ran."""
    from train.cli import main as train_cli
    (work / "fer.csv").write_text("x")
    for model, weights in (("vanilla_cnn", None), ("resnet50", "none")):
        argv, cfg = reproduce.train_args(model, "fer.csv", "official", 3, weights, Path("runs") / model)
        params = train_cli.make_context("train", list(argv)).params
        given = {k: v for k, v in params.items() if v not in (None, False)}
        assert given and all(cfg.to_dict()[k] == v for k, v in given.items()), (given, cfg)


def shipped_run(work: Path, flip: bool = False, ensemble: tuple = ()) -> Path:
    run = make_run(work / "runs", "vanilla_cnn-official", split="official", preset="default", epochs=40, acc=0.6,
                   flip=flip, ensemble=ensemble)
    src = run / "ensemble-flip-tta" if ensemble else run / "flip-tta" if flip else run
    (src / "metadata.json").write_bytes((run / "metadata.json").read_bytes())
    for f, body in (("model_float32.tflite", b"f" * 5000), ("model_int8.tflite", b"i" * 1200), ("report.md", b"r")):
        (src / f).write_bytes(body)
    for f in ("model_float32.tflite", "model_int8.tflite", "report.json", "report.md", "metadata.json"):
        os.utime(src / f, (T0 + 60, T0 + 60))
    return run


def test_make_default_model_ships_one_pair_and_documents_it(work):
    run = shipped_run(work)
    dest = work / "default"
    dest.mkdir()
    (dest / "model_float32.tflite").write_bytes(b"stale float model of another run")
    p = script("make_default_model.py", str(run), "--dest", str(dest), env={"MAX_BYTES": "2000"})
    assert p.returncode == 0 and "already converted" in p.stderr, p.stderr
    assert sorted(f.name for f in dest.iterdir()) == ["README.md", "metadata.json", "model_int8.tflite", "report.md"]
    assert (dest / "model_int8.tflite").read_bytes() == b"i" * 1200
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "int8 model on PublicTest (n=3589, official split): **60.25%**" in readme
    assert "11f7da2a6a3c26351b9d6638fddb63074092af21f4f54a4fdea4f300536e9d89" in readme
    assert "python -m train --data ../shared/data/fer2013/sample.csv --model vanilla_cnn --preset default" in readme
    assert f"python scripts/make_default_model.py {run}   #" in readme

    p = script("make_default_model.py", str(run), "--dest", str(dest), "--max-bytes", "1000")
    assert p.returncode == 5 and "over the 1000-byte limit" in p.stderr
    p = script("make_default_model.py", str(work / "nope"), "--dest", str(dest))
    assert p.returncode == 3 and "run folder not found" in p.stderr


def test_make_default_model_ships_the_flip_tta_folder(work):
    run = shipped_run(work, flip=True)
    (run / "model_int8.tflite").write_bytes(b"plain")
    dest = work / "default"
    p = script("make_default_model.py", str(run), "--dest", str(dest), env={"FLIP_TTA": "1"})
    assert p.returncode == 0, p.stderr
    assert (dest / "model_int8.tflite").read_bytes() == b"i" * 1200  # the flip-tta file, not the plain one
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "**61.05%**" in readme and "converted with `--flip-tta`" in readme
    assert f"python scripts/make_default_model.py {run} --flip-tta" in readme
    p = script("make_default_model.py", str(run), "--dest", str(dest), env={"FLIP_TTA": "yes"})
    assert p.returncode == 2 and "FLIP_TTA must be 0 or 1" in p.stderr


def test_make_default_model_ships_an_ensemble(work):
    """--member: the RUN/ensemble-flip-tta file of exactly those members, and a README that says how to remake it."""
    member = make_run(work / "runs", "vanilla_cnn-official-init1", split="official", preset="default", epochs=40,
                      acc=0.59)
    run = shipped_run(work, flip=True, ensemble=("vanilla_cnn-official-init1",))
    report = run / "ensemble-flip-tta" / "report.json"
    doc = json.loads(report.read_text())
    doc["run"]["members"] = [str(member)]  # as convert records a member given by its full path
    write(report, doc)
    os.utime(report, (T0 + 60, T0 + 60))
    dest = work / "default"
    p = script("make_default_model.py", str(run), "--flip-tta", "--member", str(member), "--dest", str(dest),
               "--max-bytes", "4000000")
    assert p.returncode == 0 and "already converted" in p.stderr, p.stderr
    assert (dest / "model_int8.tflite").read_bytes() == b"i" * 1200
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert "**62.25%**" in readme and "an ensemble: the file also holds the model of" in readme
    assert f"python scripts/make_default_model.py {run} --flip-tta --member {member}" in readme
    assert "--out runs/vanilla_cnn-official-init1" in readme  # the member's own training command
    p = script("make_default_model.py", str(run), "--flip-tta", "--member", str(work / "nope"), "--dest", str(dest))
    assert p.returncode == 3 and "run folder not found" in p.stderr


def test_make_default_model_readme_from_archived_records(work):
    """The shipped README can be rewritten from docs/runs alone (its run folder need not be on this machine)."""
    records = work / "records"
    make_run(records, "vanilla_cnn-official", split="official", preset="default", epochs=40, acc=0.6, flip=True,
             archived=True)
    dest = work / "default"
    p = script("make_default_model.py", str(records / "vanilla_cnn-official"), "--flip-tta", "--readme-only",
               "--dest", str(dest))
    assert p.returncode == 0, p.stderr
    assert [f.name for f in dest.iterdir()] == ["README.md"]
    assert "From run folder: `runs/vanilla_cnn-official`" in (dest / "README.md").read_text(encoding="utf-8")



# --- FER+ runs and cross-checks (scripts/results/ferplus.py) ----------------------------------------

FERPLUS_LABELS = [*LABELS, "Contempt"]


def make_ferplus_run(root: Path, name: str, scheme: str, acc: float) -> Path:
    """A finished official-split run trained on FER+ votes: config, metadata and every score with 8 labels."""
    run = make_run(root, name, split="official", preset="default", epochs=3, acc=acc)
    for fname, edit in (("config.json", lambda d: d.update(labels="ferplus", ferplus="votes.csv", label_scheme=scheme)),
                        ("metadata.json", lambda d: (d.update(labels=FERPLUS_LABELS),
                                                     d["data"].update(labels="ferplus", label_scheme=scheme)))):
        doc = json.loads((run / fname).read_text())
        edit(doc)
        write(run / fname, doc)
    for fname in ("metrics.json", "report.json"):
        doc = json.loads((run / fname).read_text())
        for m in doc.get("models", {"": doc}).values():
            m["per_class"]["Contempt"] = {"precision": 0.5, "recall": 0.25, "f1": 0.33, "support": 24}
            if "drop_vs_float32" in m:
                m["drop_vs_float32"]["per_class_recall_pp"]["Contempt"] = 4.17
        write(run / fname, doc)
    os.utime(run / "report.json", (T0 + 60, T0 + 60))
    return run


def test_ferplus_runs_and_crosschecks(work):
    make_run(work / "runs", "vanilla_cnn-official", split="official", preset="default", acc=0.6)
    make_ferplus_run(work / "runs", "vanilla_cnn-ferplus-soft", "soft", 0.8)
    check = {"format": "ferlite-ferplus-crosscheck/1", "model": "device/models/default/model_int8.tflite",
             "model_labels": LABELS, "usage": "PublicTest", "ferplus_split": "FER2013Valid", "faces": {"scored": 3578},
             "label_agreement_fer2013_vs_ferplus_7": 0.654,
             "scores": {"fer2013_7": {"accuracy": 0.6372, "n": 3578}, "ferplus_7": {"accuracy": 0.6456, "n": 3372}},
             "provenance": prov("python scripts/ferplus_crosscheck.py", ["--model", "m.tflite"])}
    write(work / "runs" / "ferplus_crosscheck" / "default_int8.json", check)
    text = render(Path("records"), (Path("runs"),))
    assert "FER+ soft" in row_for(text, "vanilla_cnn-ferplus-soft") and "FER+" not in row_for(text, "`vanilla_cnn-official`")
    section = text.split("## FER+ labels", 1)[1].split("\n## ", 1)[0]
    soft = next(line for line in section.splitlines() if line.startswith("| `soft` |"))
    assert "80.0%" in soft and "25.0% (n=24)" in soft  # Keras accuracy, Contempt recall
    assert section.count("| not run |") >= 2  # majority and pld: no run yet
    assert "| 63.72% (n=3578) | 64.56% (n=3372) | — (no Contempt output) | 65.4% |" in section
    assert "python scripts/ferplus_crosscheck.py --model m.tflite" in section
    ablation = text.split("## Ablation", 1)[1].split("\n## ", 1)[0]
    assert "vanilla_cnn-official" in ablation and "ferplus" not in ablation  # other labels: its own table
    own = text.split("`vanilla_cnn-ferplus-soft`\n", 1)[1].split("\n## ", 1)[0]
    assert "| Neutral | Contempt |" in own and "| 25.0% |" in own and "scheme `soft`" in own  # per-class recall
    assert mr.main(["--runs", "runs", "--archive", "--records", "records", "--out", "R.md"]) == 0
    assert (work / "records" / "ferplus_crosscheck" / "default_int8.json").is_file()
