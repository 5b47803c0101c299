"""The conversion: a training run folder -> TFLite targets, every model scored on the same faces, a report.

    from convert.pipeline import run
    result = run("runs/vanilla", int8=True)     # what `python -m convert runs/vanilla --int8` does

``run`` checks the options, loads the run (metadata, config, Keras model, its own data and split),
exports each requested target through ``export.EXPORTERS``, scores every model on the run's
evaluation faces and writes report.json / report.md. Failures are ``device.errors`` types with
one-line messages (UsageError, InputError, RunFailed); the ``--max-drop`` gate is a field of the
returned ``ConvertResult``, for the caller to act on.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device import contract
from device.atomic import write_bytes
from device.bench import model_latency
from device.errors import InputError, UsageError
from device.macs import macs_record
from device.metadata import METADATA_NAME, read_metadata, write_metadata
from device.paths import portable
from device.reliability import reliability

from . import calibration as cal
from . import export as ex
from . import report as rep
from . import temperature as tmp
from .console import Progress, captured_stderr, info

MODEL_NAME = "model.keras"
CONFIG_NAME = "config.json"
FLIP_TTA_DIR = "flip-tta"  # --flip-tta's default output folder, inside the run folder
ENSEMBLE_DIR = "ensemble"  # --member's default output folder ("ensemble-flip-tta" with --flip-tta)
# A member must have been trained on the same faces with the same split as the run: otherwise the
# run's test faces may be another member's training faces, and the ensemble's score would be a leak.
# FER+ schemes may differ: every scheme narrows FER2013's split (train/ferplus.py run_split) and keeps the same
# majority-labelled faces for validation and test, so a majority and a soft run hold out the same faces.
SAME_SPLIT_KEYS = ("split", "seed", "val_fraction", "limit", "labels", "ferplus")
DEFAULT_LATENCY_RUNS = 50
LATENCY_WARMUP = 10


class ConvertError(InputError):
    """Bad input for a conversion: a missing run folder, no config.json, not a ferlite Keras model."""


@dataclass
class ConvertResult:
    out_dir: Path
    paths: dict[str, Path]                 # target name -> written file (tflite, report, npz, pngs)
    report: dict
    gate_passed: bool | None = None        # None when no --max-drop was given
    notes: list[str] = field(default_factory=list)


@dataclass
class Evaluation:
    """The faces every model is scored on: the run's test split, or its validation split when it has none."""
    faces: np.ndarray                      # (N, 48, 48) uint8
    labels: np.ndarray
    name: str
    notes: list[str]


def run(run_dir: str | os.PathLike, *, int8: bool = False, float16: bool = False, dynamic: bool = False,
        out: str | os.PathLike | None = None, calib: int = cal.DEFAULT_CALIB, data: str | os.PathLike | None = None,
        ferplus: str | os.PathLike | None = None, eval_limit: int | None = None, max_drop: float | None = None, eval_faces: int = rep.DEFAULT_EVAL_FACES,
        latency_runs: int = DEFAULT_LATENCY_RUNS, threads: int | None = None, flip_tta: bool = False,
        members: tuple[str | os.PathLike, ...] = (), progress: bool = True, provenance: dict | None = None,
        calibrate: bool = True) -> ConvertResult:
    """Convert a training run folder to TFLite, score every model on the run's evaluation split, write the report.

    Always writes ``model_float32.tflite`` (the reference); ``int8``/``float16``/``dynamic`` add
    targets. Outputs go to ``out`` (default: the run folder) with ``metadata.json`` beside them.
    ``flip_tta`` converts the model wrapped in ``train.models.with_flip_average`` (mean of the face
    and its mirror, inside the file); its outputs default to ``RUN/flip-tta`` so they never sit
    beside the plain ``model.keras`` they differ from. ``members``: other run folders (same labels, data
    and split) whose models are averaged with this one inside the file (an ensemble; default output
    ``RUN/ensemble``, or ``RUN/ensemble-flip-tta``); evaluation and calibration stay the run's own. ``provenance``: ``device.provenance.record``
    of the command that asked for this, stored in report.json. ``calibrate``: fit a temperature on the run's
    validation faces for what the file outputs and fold it into the model before export (``convert.temperature``).
    """
    check_options(int8=int8, max_drop=max_drop, calib=calib, eval_limit=eval_limit, eval_faces=eval_faces,
                  latency_runs=latency_runs)
    targets = ["float32"] + [t for t, wanted in (("int8", int8), ("float16", float16), ("dynamic", dynamic)) if wanted]
    run_dir = check_run_dir(run_dir)
    meta, cfg = read_metadata(run_dir), read_config(run_dir)  # MetadataError has its own clear message
    labels = list(meta["labels"])
    member_dirs = [check_member(m, run_dir, meta, cfg) for m in members]
    out_dir = output_dir(run_dir, out, flip_tta, len(member_dirs))
    meta = {k: v for k, v in meta.items() if k not in tmp.METADATA_KEYS}  # a re-conversion fits its own
    bases = [load_keras_model(p / MODEL_NAME, len(labels)) for p in [run_dir, *member_dirs]]
    seed = int(cfg.get("seed", 0) or 0)
    run_data = cal.load_run_data(run_dir, cfg, meta, data, ferplus)  # the run's own data, labels and split
    calib_faces, _, calib_stats = (cal.calibration_faces(run_data.faces, run_data.train, calib, seed)
                                   if int8 else (None, None, None))
    ev = evaluation(run_data, eval_limit, seed)
    val = (cal.preprocess(run_data.faces[run_data.val]), run_data.labels[run_data.val])
    info("fitting the temperature on the validation faces" if calibrate else "scoring the validation faces", progress)
    try:
        temp = tmp.calibrate(bases, flip_tta, val, (ev.faces, ev.labels), calibrate, seed)
    except tmp.TemperatureError as e:
        raise UsageError(str(e)) from None
    if flip_tta or member_dirs:
        from train.models import averaged
        model = averaged(bases, flip_tta)
    else:
        model = bases[0]

    prepare_out_dir(out_dir, run_dir, meta, flip_tta, member_dirs, tmp.metadata_fields(temp))
    info(f"converting {run_dir / MODEL_NAME} -> {out_dir}", progress)
    paths = {target: export(target, model, out_dir, calib_faces, progress) for target in targets}
    models = score(model, run_dir / MODEL_NAME, paths, ev, labels, threads or os.cpu_count() or 1, latency_runs,
                   progress)
    score_val(models, paths, val, temp.val_probs)
    notes = run_data.notes + ev.notes + ([f"no test faces: ECE on {ev.name} is measured on the faces the "
                                          "temperature was fitted on"] if calibrate and ev.name == "val" else [])
    if "int8" in models:
        models["int8"]["checks"], int8_notes = rep.int8_checks(models["int8"])
        notes += int8_notes
    paths.update(write_artefacts(out_dir, models, labels, ev, eval_faces, seed, temp.record))
    gate = rep.drop_gate(models, max_drop)
    report = rep.build_report(
        run_dir=run_dir, out_dir=out_dir, meta=meta, cfg=cfg, flip_tta=flip_tta, members=member_dirs,
        evaluation={"split": ev.name, "split_kind": run_data.split_kind, "n": int(len(ev.faces)), "limit": eval_limit,
                    "data": str(run_data.path), "data_sha256": run_data.sha256},
        calibration=calib_stats, temperature=temp.record, models=models, gate=gate, notes=notes,
        files=[p.name for p in paths.values()], provenance_record=provenance)
    paths["report_json"], paths["report_md"] = rep.write_report(out_dir, report)
    return ConvertResult(out_dir=out_dir, paths=paths, report=report,
                         gate_passed=None if gate is None else gate["passed"], notes=notes)


# ---- check everything cheap before any heavy work -----------------------------------------------

def check_options(*, int8: bool, max_drop: float | None, calib: int, eval_limit: int | None, eval_faces: int,
                  latency_runs: int) -> None:
    if max_drop is not None and not int8:
        raise UsageError("--max-drop gates the int8 accuracy drop: it needs --int8")
    if max_drop is not None and not max_drop >= 0:
        raise UsageError(f"--max-drop must be >= 0 percentage points, got {max_drop}")
    if calib <= 0:
        raise UsageError(f"--calib must be a positive number of faces, got {calib}")
    if eval_limit is not None and eval_limit <= 0:
        raise UsageError(f"--eval-limit must be positive, got {eval_limit}")
    if eval_faces < 0 or latency_runs <= 0:
        raise UsageError("--eval-faces must be >= 0 and --latency-runs > 0")


def check_run_dir(run_dir) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ConvertError(f"run folder not found: {run_dir}")
    if not run_dir.is_dir():
        raise ConvertError(f"not a run folder: {run_dir}")
    return run_dir


def read_config(run_dir: Path) -> dict:
    """The run's config.json (train writes it; keys it does not know, such as provenance, are ignored)."""
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        raise ConvertError(f"no {CONFIG_NAME} in {run_dir}: cannot find the run's data and split")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(cfg, dict):
        raise ConvertError(f"{path}: expected a JSON object")
    return cfg


def wrapped_dir(flip_tta: bool, n_members: int) -> str | None:
    """The default output folder (inside the run folder) of a model wrapped by --flip-tta/--member; None: plain."""
    if n_members:
        return ENSEMBLE_DIR + ("-" + FLIP_TTA_DIR if flip_tta else "")
    return FLIP_TTA_DIR if flip_tta else None


def output_dir(run_dir: Path, out, flip_tta: bool, n_members: int = 0) -> Path:
    own = wrapped_dir(flip_tta, n_members)
    out_dir = Path(out) if out is not None else (run_dir / own if own else run_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConvertError(f"--out is not a folder: {out_dir}")
    if own and out_dir.resolve() == run_dir.resolve():
        what = "--member ensembles" if n_members else "--flip-tta models"
        raise UsageError(f"{what} need their own folder (default {run_dir / own}), "
                         "not the run folder beside the plain model.keras")
    return out_dir


def check_member(member, run_dir: Path, meta: dict, cfg: dict) -> Path:
    """A --member run folder: finished, the run's labels, and trained on the same data and split."""
    member = check_run_dir(member)
    if member.resolve() == run_dir.resolve():
        raise UsageError(f"--member {member} is the run itself: give the other runs of the ensemble")
    m_meta, m_cfg = read_metadata(member), read_config(member)
    if list(m_meta["labels"]) != list(meta["labels"]):
        raise ConvertError(f"--member {member}: labels {m_meta['labels']} differ from the run's {meta['labels']}")
    sha = (m_meta.get("data") or {}).get("sha256"), (meta.get("data") or {}).get("sha256")
    from train.config import TrainConfig
    default = TrainConfig().to_dict()  # runs older than a key were trained at its default
    diff = [k for k in SAME_SPLIT_KEYS if m_cfg.get(k, default[k]) != cfg.get(k, default[k])]
    diff += ["data sha256"] if sha[0] != sha[1] else []
    if diff:
        raise ConvertError(f"--member {member}: trained on other data or another split ({', '.join(diff)} differ), "
                           "so the run's test faces could be its training faces")
    return member


def _import_custom_layers() -> None:
    """Register train/'s custom layers with Keras so ``load_model`` can rebuild them."""
    for mod in ("train.layers", "train.models"):
        try:
            __import__(mod)
        except ImportError:
            pass


def load_keras_model(path: Path, n_labels: int):
    """Load ``model.keras`` for inference; one clear error when it is not a ferlite Keras model."""
    if not path.is_file():
        raise ConvertError(f"no {path.name} in {path.parent}")
    import zipfile
    if not zipfile.is_zipfile(path):
        raise ConvertError(f"{path}: not a Keras model (a .keras file is a zip archive; this one is not)")
    from . import quiet_tensorflow
    quiet_tensorflow()
    import keras
    _import_custom_layers()
    try:
        with captured_stderr():
            model = keras.saving.load_model(path, compile=False)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConvertError(f"{path}: not a loadable Keras model ({first[:300]})") from None
    if not isinstance(model, keras.Model):
        raise ConvertError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if shape != contract.INPUT_SHAPE:
        raise ConvertError(f"{path}: model input is {shape}, ferlite models take {contract.INPUT_SHAPE} faces")
    n_out = model.outputs[0].shape[-1]
    if n_out != n_labels:
        raise ConvertError(f"{path}: model has {n_out} outputs but metadata.json names {n_labels} labels")
    return model


def evaluation(data: cal.RunData, limit: int | None, seed: int) -> Evaluation:
    """The run's test faces (validation faces when the split has none), a seeded ``limit`` of them if asked."""
    notes = []
    idx, name = data.test, data.test_name
    if len(idx) == 0:
        if len(data.val) == 0:
            raise ConvertError(f"the run's split {data.split_kind!r} has no test or validation faces to evaluate on")
        idx, name = data.val, "val"
        notes.append(f"split {data.split_kind!r} has no test faces on this data file: evaluated on the validation split")
    if limit is not None and limit < len(idx):
        idx = np.sort(np.random.default_rng(seed).permutation(idx)[:limit])
    idx = np.asarray(idx, np.int64)
    return Evaluation(cal.preprocess(data.faces[idx]), data.labels[idx], name, notes)


# ---- convert, score, write -------------------------------------------------------------------------

def prepare_out_dir(out_dir: Path, run_dir: Path, meta: dict, flip_tta: bool, members: list[Path] = (),
                    temperature: dict | None = None) -> None:
    """``meta``: the run's metadata less any temperature; ``temperature``: the fields of the one baked in now."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "report.md"):  # never leave a report describing other models
        (out_dir / stale).unlink(missing_ok=True)
    # the device needs nothing new (averaging and temperature are inside the file); people reading it do
    extra = {**({"test_time_augmentation": "flip"} if flip_tta else {}),
             **({"ensemble": [portable(run_dir), *map(portable, members)]} if members else {}), **(temperature or {})}
    if extra or read_metadata(run_dir) != meta:  # the run folder's own may hold a stale temperature
        write_metadata(out_dir, {**meta, **extra})
    elif out_dir.resolve() != run_dir.resolve():
        write_bytes(out_dir / METADATA_NAME, (run_dir / METADATA_NAME).read_bytes())


def export(target: str, model, out_dir: Path, calib_faces: np.ndarray | None, progress: bool) -> Path:
    """One target through ``export.EXPORTERS``; int8 is the one that also takes the calibration faces."""
    if target != "int8":
        return ex.EXPORTERS[target](model, out_dir)
    with Progress(len(calib_faces), "calibrating int8", progress) as bar:
        return ex.EXPORTERS["int8"](model, out_dir, calib_faces, progress=bar)


def score(model, model_file: Path, paths: dict[str, Path], ev: Evaluation, labels: list[str], threads: int,
          latency_runs: int, progress: bool) -> dict[str, dict]:
    """Every model on the same faces with the one shared ``evaluate``: Keras first, then each target
    against Keras (and against float32), with its file, graph and batch-1 latency."""
    models: dict[str, dict] = {}
    probs: dict[str, np.ndarray] = {}
    with Progress(len(ev.faces), "evaluating keras", progress) as bar:
        models["keras"], probs["keras"] = rep.score(rep.keras_predict(model), ev.faces, ev.labels, labels, bar)
    models["keras"].update(file=model_file.name, size_bytes=model_file.stat().st_size)
    models["keras"]["reliability"] = {"test": reliability(probs["keras"], ev.labels)}
    for name, path in paths.items():
        with Progress(len(ev.faces), f"evaluating {name}", progress) as bar:
            m, probs[name] = rep.score_tflite(path, ev.faces, ev.labels, labels, threads=threads, progress=bar)
        m.update(file=path.name, size_bytes=path.stat().st_size, io=ex.io_details(path),
                 graph=ex.graph_stats(path, list_float_ops=name == "int8"), macs=macs_record(path))
        m.update(rep.comparisons(name, m, probs[name], models, probs))
        m["latency"] = [latency(path, t, ev.faces[:1], latency_runs) for t in sorted({1, threads})]
        m["reliability"] = {"test": reliability(probs[name], ev.labels)}
        models[name] = m
    return models


def score_val(models: dict, paths: dict[str, Path], val: tuple[np.ndarray, np.ndarray],
              keras_probs: np.ndarray | None) -> None:
    """Each model's reliability on the validation faces too (Keras's from the logits the fit used)."""
    if keras_probs is None:
        return
    models["keras"]["reliability"]["val"] = reliability(keras_probs, val[1])
    for name, path in paths.items():
        models[name]["reliability"]["val"] = reliability(rep.classifier(path).predict_batched(val[0]), val[1])


def latency(path: Path, threads: int, face: np.ndarray, runs: int) -> dict:
    """Batch-1 latency through the device wrapper, timed by ``device.bench.model_latency`` (bench's own timer)."""
    lat = model_latency(rep.classifier(path, threads=threads), face, LATENCY_WARMUP, runs)
    return {"threads": threads, "runs": lat.pop("runs"), "warmup": LATENCY_WARMUP, **lat}  # report.json's order


def write_artefacts(out_dir: Path, models: dict, labels: list[str], ev: Evaluation, eval_faces: int,
                    seed: int, temperature: dict | None = None) -> dict[str, Path]:
    """A confusion-matrix PNG per model, a reliability diagram per split, and ``eval_faces.npz`` (labelled
    faces for ``run.py bench``)."""
    paths = {f"reliability_{split}": png for split, png in rep.plot_reliability_splits(
        out_dir, models, (temperature or {}).get("keras_uncalibrated"), ev.name).items()}
    for name, m in models.items():
        png = rep.plot_confusion(m["confusion"], labels, out_dir / f"confusion_{name}.png",
                                 f"{name}: accuracy {100 * m['accuracy']:.1f}% ({ev.name}, n={len(ev.faces)})")
        m["confusion_png"] = png.name
        paths[f"confusion_{name}"] = png
    if eval_faces:
        paths["eval_faces"] = rep.write_eval_faces(out_dir / "eval_faces.npz", ev.faces, ev.labels, ev.name,
                                                   labels, n=eval_faces, seed=seed)
    return paths
