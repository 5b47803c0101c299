"""The runs' records read into ``Run`` objects: archived ones in docs/runs/ and live run folders.

A finished run's small records (RECORD_FILES; never a model) are archived in docs/runs/NAME/ with
archive.json (the file times git does not keep, model.keras's size), so a clean checkout can
regenerate docs/RESULTS.md. A missing file is None; an unreadable one is named in ``Run.problems``,
never fatal.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from convert.pipeline import FLIP_TTA_DIR as FLIP_DIR  # where convert --flip-tta writes
from convert.pipeline import wrapped_dir
from device.atomic import write_bytes, write_json
from device.paths import portable, portable_record
from device.provenance import jsonable
from train.registry import MODELS, normalize_weights

RECORDS = Path(__file__).resolve().parents[2] / "docs" / "runs"
ENSEMBLE_DIRS = tuple(wrapped_dir(flip, 1) for flip in (False, True))  # where convert --member writes
RECORD_FILES = ("config.json", "metadata.json", "metrics.json", "history.csv", "report.json", "bench.json",
                "reproduce.json", f"{FLIP_DIR}/report.json", f"{FLIP_DIR}/bench.json",
                *(f"{d}/{f}" for d in ENSEMBLE_DIRS for f in ("report.json", "bench.json")))
PEER = Path("peer_fer") / "peer.json"  # scripts/docs/peer_fer.py's output inside a runs folder
CROSSCHECK = "ferplus_crosscheck"       # python -m convert crosscheck --json NAME.json inside a runs folder
SELECTIONS = "selection"                # python -m convert select --json records, beside the records folder


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


def shown_path(p: Path | str) -> str:
    """``p`` relative to the working directory where it is inside it, as the commands shown use it;
    else as a record names it (``runs/NAME``, device/paths.py)."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return portable(p)


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
    ensembles: list = field(default_factory=list)  # RUN/ensemble[-flip-tta]: averaged with other runs' models
    problems: list = field(default_factory=list)

    @property
    def cfg(self) -> dict:
        return self.config or {}

    @property
    def model(self) -> str:
        return self.cfg.get("model") or g(self.metadata, "model") or "unknown"

    @property
    def label_set(self) -> str:
        """fer2013 (the file's own labels) or ferplus (FER+ votes, train/ferplus.py); older runs are fer2013."""
        return self.cfg.get("labels") or g(self.metadata, "data", "labels") or "fer2013"

    @property
    def random_init(self) -> bool:
        backbone = getattr(MODELS.get(self.model), "backbone", False)
        return bool(backbone and self.config) and normalize_weights(self.cfg.get("weights")) is None

    def mtime(self, fname: str) -> str | None:
        """When the run folder's file was written (archive.json keeps it for archived records)."""
        return g(self.archive, "mtimes", fname) if self.archive is not None else file_time(self.dir / fname)


@dataclass(frozen=True)
class Collected:
    """Everything docs/RESULTS.md is made from, and where it was read."""
    records: Path
    roots: tuple[Path, ...]
    runs: list[Run]
    unfinished: list[tuple[Path, dict, dict]]  # (folder, state.json, config.json) of runs still training
    peer: dict | None
    peer_path: Path | None
    crosschecks: tuple = ()  # (path, python -m convert crosscheck's JSON) from every root's CROSSCHECK folder
    selections: tuple = ()   # (path, python -m convert select's JSON) beside the records folder, oldest first


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
    run.flip = wrapped(run, folder, FLIP_DIR)
    run.ensembles = [e for e in (wrapped(run, folder, d) for d in ENSEMBLE_DIRS) if e]
    keras = run.mtime("model.keras")
    for fname, doc, what in (("report.json", run.report, "the conversion"), ("bench.json", run.bench, "the bench")):
        if doc and keras and (run.mtime(fname) or keras) < keras:
            run.problems.append(f"{fname} is older than model.keras: {what} describes an earlier model (rerun it)")
    return run


def wrapped(run: Run, folder: Path, sub: str) -> Run | None:
    """RUN/sub's conversion (the run's model wrapped by --flip-tta or --member) as a Run of its own, or None."""
    report, _ = read_json(folder / sub / "report.json")
    if not report:
        return None
    return replace(run, name=f"{run.name}/{sub}", report=report, flip=None, ensembles=[],
                   bench=read_json(folder / sub / "bench.json")[0])


def members(run: Run) -> list[str]:
    """The other runs an ensemble's file averages with this one (their folder names), [] for a single model."""
    return [Path(m).name for m in g(run.report, "run", "members", default=None) or []]


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


def collect(records: Path = RECORDS, roots: tuple[Path, ...] = (), peer_path: Path | None = None) -> Collected:
    """The archived records, the run folders in ``roots`` over them, and the peer's peer.json
    (``peer_path``, else the first root's, else the archived one)."""
    runs, unfinished = find_runs([records, *roots])
    peer_path = peer_path or next((p for p in [*(r / PEER for r in roots), records / PEER] if p.is_file()), None)
    peer = read_json(peer_path)[0] if peer_path else None
    checks = {p.name: (p, doc) for root in (records, *roots) for p in sorted((root / CROSSCHECK).glob("*.json"))
              for doc in [read_json(p)[0]] if doc}  # a later root's file replaces a same-named record
    return Collected(records, tuple(roots), runs, unfinished, peer, peer_path, tuple(checks.values()),
                     read_selections(records))


def read_selections(records: Path) -> tuple:
    """(path, record) of every readable val_select JSON in ``records``'s sibling SELECTIONS folder, oldest first."""
    found = [(p, doc) for p in sorted((records.parent / SELECTIONS).glob("*.json"))
             for doc in [read_json(p)[0]] if doc and isinstance(doc.get("rows"), list)]
    return tuple(sorted(found, key=lambda x: (recorded(x[1]).get("date") or "", x[0].name)))


def archived_bytes(path: Path) -> bytes:
    """A record as archived: a readable JSON one with its paths portable (an older run folder's records
    name it by this machine's path), anything else as it is."""
    doc = read_json(path)[0] if path.suffix == ".json" else None
    return path.read_bytes() if doc is None else \
        (json.dumps(portable_record(doc), indent=2, default=jsonable) + "\n").encode("utf-8")


def archive_runs(roots: list[Path], records: Path) -> list[str]:
    """Copy each finished run's records (never a model) into ``records/NAME/``, and the peer's peer.json."""
    names = []
    for root in (r for r in roots if r.resolve() != records.resolve()):
        for folder in sorted(p for p in root.iterdir() if (p / "metrics.json").is_file()):
            dest, mtimes = records / folder.name, {}
            for rel in RECORD_FILES:
                if (folder / rel).is_file():
                    write_bytes(dest / rel, archived_bytes(folder / rel))
                    mtimes[rel] = file_time(folder / rel)
                elif (dest / rel).is_file():
                    (dest / rel).unlink()  # the run has no such file (any more): the copy would describe another
            keras = folder / "model.keras"
            mtimes["model.keras"] = file_time(keras)
            write_json(dest / "archive.json", {"format": "ferlite-records/1", "from": portable(folder),
                                               "mtimes": mtimes, "model_keras_bytes":
                                               keras.stat().st_size if keras.is_file() else None})
            names.append(folder.name)
        if (root / PEER).is_file():
            write_bytes(records / PEER, archived_bytes(root / PEER))
        for check in sorted((root / CROSSCHECK).glob("*.json")):
            write_bytes(records / CROSSCHECK / check.name, archived_bytes(check))
    return names


# --- what each run's records say ----------------------------------------------------------------

def scores(run: Run, name: str) -> dict:
    """report.json's figures of one model (keras, float32, int8); Keras falls back to train's metrics.json."""
    return g(run.report, "models", name, default={}) or (run.metrics if name == "keras" else {})


def latency(run: Run, name: str, source: str) -> dict | None:
    """1-thread batch-1 latency from "report" (report.json) or "bench" (bench.json)."""
    if source == "bench":
        return g(run.bench, "models", name, "latency", "1")
    return next((x for x in scores(run, name).get("latency") or [] if x.get("threads") == 1), None)


def split_name(run: Run) -> str:
    return g(run.report, "evaluation", "split") or run.metrics.get("split") or "?"


def split_kind(run: Run) -> str:
    return run.cfg.get("split") or g(run.metadata, "data", "split") or "?"


def planned_epochs(cfg: dict) -> int:
    """Epochs a config asks for: the frozen ones plus any fine-tuning ones."""
    return int(cfg.get("epochs") or 0) + int(cfg.get("fine_tune_epochs") or 0)


def epochs_planned(run: Run) -> int | None:
    return planned_epochs(run.cfg) if run.config else None


def final_train_accuracy(run: Run) -> float | None:
    for row in reversed(run.history):
        try:
            return float(row["accuracy"])
        except (KeyError, TypeError, ValueError):
            continue
    return None
