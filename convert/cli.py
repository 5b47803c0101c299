"""``python -m convert RUN_DIR [--int8] [--float16] [--dynamic] ...``: click at the edge, ``convert_run`` inside.

``convert_run`` is a plain typed function (no click, no sys.exit): it raises
``ConvertError`` (or one of the specific errors below, all ``ValueError``/``RuntimeError``
subclasses with a one-line message) and returns a ``ConvertResult``. ``main`` turns
errors into one ``error: ...`` line on stderr and a non-zero exit.

Exit codes: 0 done; 1 bad input or failed conversion; 2 bad command line;
3 conversion done but the int8 accuracy drop exceeds ``--max-drop``.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device import contract
from device.interpreter import ModelError
from device.metadata import METADATA_NAME, MetadataError, read_metadata

from . import calibration as cal
from . import export as ex
from . import report as rep
from .console import Progress, captured_stderr, info

MODEL_NAME = "model.keras"
CONFIG_NAME = "config.json"
FLIP_TTA_DIR = "flip-tta"  # --flip-tta's default output folder, inside the run folder
EXIT_ERROR, EXIT_USAGE, EXIT_GATE = 1, 2, 3


class ConvertError(ValueError):
    """Bad input for a conversion (missing run folder, not a Keras model, bad flags...)."""


@dataclass
class ConvertResult:
    out_dir: Path
    paths: dict[str, Path]                 # target name -> written file (tflite, report, npz, pngs)
    report: dict
    gate_passed: bool | None = None        # None when no --max-drop was given
    notes: list[str] = field(default_factory=list)


def _read_config(run_dir: Path) -> dict:
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


def _versions() -> dict:
    from importlib import metadata as im
    out = {}
    for key, dist in (("tensorflow", "tensorflow-cpu"), ("keras", "keras"), ("ai_edge_litert", "ai-edge-litert"),
                      ("numpy", "numpy")):
        for d in (dist, dist.replace("-cpu", "")):
            try:
                out[key] = im.version(d)
                break
            except im.PackageNotFoundError:
                continue
    return out


def _eval_indices(data: cal.RunData, limit: int | None, seed: int) -> tuple[np.ndarray, str, list[str]]:
    notes = []
    idx, name = data.test, data.test_name
    if len(idx) == 0:
        if len(data.val) == 0:
            raise ConvertError(f"the run's split {data.split_kind!r} has no test or validation faces to evaluate on")
        idx, name = data.val, "val"
        notes.append(f"split {data.split_kind!r} has no test faces on this data file: evaluated on the validation split")
    if limit is not None and limit < len(idx):
        idx = np.sort(np.random.default_rng(seed).permutation(idx)[:limit])
    return np.asarray(idx, np.int64), name, notes


def convert_run(run_dir: str | os.PathLike, *, int8: bool = False, float16: bool = False, dynamic: bool = False,
                out: str | os.PathLike | None = None, calib: int = cal.DEFAULT_CALIB,
                data: str | os.PathLike | None = None, eval_limit: int | None = None,
                max_drop: float | None = None, eval_faces: int = rep.DEFAULT_EVAL_FACES,
                latency_runs: int = 50, threads: int | None = None, flip_tta: bool = False,
                progress: bool = True) -> ConvertResult:
    """Convert a training run folder to TFLite, score every model on the run's evaluation split, write the report.

    Always writes ``model_float32.tflite`` (the reference); ``int8``/``float16``/``dynamic`` add
    targets. Outputs go to ``out`` (default: the run folder) with ``metadata.json`` beside them.
    ``flip_tta`` converts the model wrapped in ``train.models.with_flip_average`` (mean of the face
    and its mirror, inside the file); its outputs default to ``RUN/flip-tta`` so they never sit
    beside the plain ``model.keras`` they differ from.
    """
    # ---- check everything cheap before any heavy work ------------------------------------------
    if max_drop is not None and not int8:
        raise ConvertError("--max-drop gates the int8 accuracy drop: it needs --int8")
    if max_drop is not None and not max_drop >= 0:
        raise ConvertError(f"--max-drop must be >= 0 percentage points, got {max_drop}")
    if calib <= 0:
        raise ConvertError(f"--calib must be a positive number of faces, got {calib}")
    if eval_limit is not None and eval_limit <= 0:
        raise ConvertError(f"--eval-limit must be positive, got {eval_limit}")
    if eval_faces < 0 or latency_runs <= 0:
        raise ConvertError("--eval-faces must be >= 0 and --latency-runs > 0")
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ConvertError(f"run folder not found: {run_dir}")
    if not run_dir.is_dir():
        raise ConvertError(f"not a run folder: {run_dir}")
    meta = read_metadata(run_dir)  # MetadataError with its own clear message
    labels = list(meta["labels"])
    cfg = _read_config(run_dir)
    out_dir = Path(out) if out is not None else (run_dir / FLIP_TTA_DIR if flip_tta else run_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConvertError(f"--out is not a folder: {out_dir}")
    if flip_tta and out_dir.resolve() == run_dir.resolve():
        raise ConvertError(f"--flip-tta models need their own folder (default {run_dir / FLIP_TTA_DIR}), "
                           "not the run folder beside the plain model.keras")
    model = load_keras_model(run_dir / MODEL_NAME, len(labels))
    if flip_tta:
        from train.models import with_flip_average
        model = with_flip_average(model)
    seed = int(cfg.get("seed", 0) or 0)

    # ---- the run's own data and split -----------------------------------------------------------
    data_ = cal.load_run_data(run_dir, cfg, meta, data)
    notes = list(data_.notes)
    calib_stats = None
    if int8:
        calib_faces, _, calib_stats = cal.calibration_faces(data_.faces, data_.train, calib, seed)
    ev_idx, ev_name, ev_notes = _eval_indices(data_, eval_limit, seed)
    notes += ev_notes
    ev_faces, ev_labels = cal.preprocess(data_.faces[ev_idx]), data_.labels[ev_idx]

    # ---- convert ---------------------------------------------------------------------------------
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "report.md"):  # never leave a report describing other models
        (out_dir / stale).unlink(missing_ok=True)
    if flip_tta:  # the device needs nothing new (the averaging is inside the file); people reading it do
        from device.metadata import write_metadata
        write_metadata(out_dir, {**meta, "test_time_augmentation": "flip"})
    elif out_dir.resolve() != run_dir.resolve():
        from device.atomic import write_bytes
        write_bytes(out_dir / METADATA_NAME, (run_dir / METADATA_NAME).read_bytes())
    paths: dict[str, Path] = {}
    info(f"converting {run_dir / MODEL_NAME} -> {out_dir}", progress)
    paths["float32"] = ex.export_float32(model, out_dir)
    if int8:
        with Progress(len(calib_faces), "calibrating int8", progress) as bar:
            paths["int8"] = ex.export_int8(model, out_dir, calib_faces, progress=bar)
    if float16:
        paths["float16"] = ex.export_float16(model, out_dir)
    if dynamic:
        paths["dynamic"] = ex.export_dynamic(model, out_dir)

    # ---- score every model with the one shared evaluate function ---------------------------------
    models: dict[str, dict] = {}
    probs: dict[str, np.ndarray] = {}
    with Progress(len(ev_faces), "evaluating keras", progress) as bar:
        models["keras"], probs["keras"] = rep.score(rep.keras_predict(model), ev_faces, ev_labels, labels, bar)
    models["keras"].update(file=MODEL_NAME, size_bytes=(run_dir / MODEL_NAME).stat().st_size)
    all_threads = threads or os.cpu_count() or 1
    for name, path in paths.items():
        with Progress(len(ev_faces), f"evaluating {name}", progress) as bar:
            m, probs[name] = rep.score_tflite(path, ev_faces, ev_labels, labels, threads=all_threads, progress=bar)
        m.update(file=path.name, size_bytes=path.stat().st_size, io=ex.io_details(path))
        ops = ex.graph_ops(path)
        fl = [o for o in ops if o["float"]]
        counts: dict[str, int] = {}
        for o in ops:
            counts[o["op"]] = counts.get(o["op"], 0) + 1
        m["graph"] = {"n_ops": len(ops), "op_counts": counts, "n_float_ops": len(fl),
                      "float_ops": fl if name == "int8" else [], "int8_end_to_end": not fl,
                      # int32 shape arithmetic (e.g. Flatten on a dynamic batch): integer, but not int8
                      "shape_ops": [o["op"] for o in ops if o["dtypes"] and set(o["dtypes"]) <= {"int32", "int64"}]}
        m["drop_vs_keras"] = rep.drop_pp(models["keras"], m)
        m["vs_keras"] = rep.compare(probs["keras"], probs[name])
        if name != "float32":
            m["drop_vs_float32"] = rep.drop_pp(models["float32"], m)
            m["vs_float32"] = rep.compare(probs["float32"], probs[name])
        lat_face = ev_faces[:1]
        m["latency"] = [rep.latency(path, t, runs=latency_runs, face=lat_face)
                        for t in sorted({1, all_threads})]
        models[name] = m
    if "int8" in models:
        io = models["int8"]["io"]
        models["int8"]["checks"] = {
            "input_int8": io["input"]["dtype"] == "int8", "output_int8": io["output"]["dtype"] == "int8",
            "input_scale_1_zero_point_minus_128": io["input"]["scale"] == 1.0 and io["input"]["zero_point"] == -128,
            "builtin_ops_only": True,  # TFLITE_BUILTINS_INT8 only: the converter refuses anything else
        }
        if not models["int8"]["checks"]["input_scale_1_zero_point_minus_128"]:
            notes.append(f"int8 input quantization is scale {io['input']['scale']:g}, zero-point "
                         f"{io['input']['zero_point']} (not 1.0/-128): the device wrapper uses its slower path")
        fl = models["int8"]["graph"]["float_ops"]
        if fl:
            notes.append("int8 graph is not integer end to end: " + ", ".join(o["op"] for o in fl) + " run in float")

    # ---- artefacts -------------------------------------------------------------------------------
    for name in models:
        png = rep.plot_confusion(models[name]["confusion"], labels, out_dir / f"confusion_{name}.png",
                                 f"{name}: accuracy {100 * models[name]['accuracy']:.1f}% ({ev_name}, n={len(ev_faces)})")
        models[name]["confusion_png"] = png.name
        paths[f"confusion_{name}"] = png
    if eval_faces:
        paths["eval_faces"] = rep.write_eval_faces(out_dir / "eval_faces.npz", ev_faces, ev_labels, ev_name,
                                                   labels, n=eval_faces, seed=seed)
    gate = None
    if max_drop is not None:
        drop = models["int8"]["drop_vs_float32"]["accuracy_pp"]
        gate = {"max_drop_pp": float(max_drop), "drop_pp": drop, "against": "float32", "passed": drop <= max_drop}
    report = {
        "format": "ferlite-convert-report/1",
        "date": rep.now_iso(),
        "machine": rep.machine_info(),
        "versions": _versions(),
        "run": {"dir": str(run_dir), "model": meta.get("model"), "flip_tta": bool(flip_tta),
                "config": {k: cfg.get(k) for k in ("data", "split", "seed", "val_fraction", "model") if k in cfg}},
        "out_dir": str(out_dir),
        "evaluation": {"split": ev_name, "split_kind": data_.split_kind, "n": int(len(ev_faces)), "limit": eval_limit,
                       "data": str(data_.path), "data_sha256": data_.sha256},
        "calibration": calib_stats,
        "models": models,
        "gate": gate,
        "notes": notes,
        "files": sorted({METADATA_NAME, *(p.name for p in paths.values()), "report.json", "report.md"}),
    }
    js, md = rep.write_report(out_dir, report)
    paths["report_json"], paths["report_md"] = js, md
    return ConvertResult(out_dir=out_dir, paths=paths, report=report,
                         gate_passed=None if gate is None else gate["passed"], notes=notes)


def summary(result: ConvertResult) -> str:
    r = result.report
    lines = []
    for name, m in r["models"].items():
        size = f"{m['size_bytes'] / 1024:8.1f} KiB"
        lat = " ".join(f"{x['median_ms']:.2f}ms@{x['threads']}t" for x in m.get("latency", []))
        extra = ""
        if "drop_vs_float32" in m:
            extra = (f" drop {m['drop_vs_float32']['accuracy_pp']:+.2f}pp vs float32,"
                     f" agreement {100 * m['vs_float32']['top1_agreement']:.1f}%")
        lines.append(f"{name:8s} {size}  acc {100 * m['accuracy']:6.2f}%  F1 {100 * m['macro_f1']:6.2f}%{extra}  {lat}")
    if "int8" in r["models"]:
        fl = r["models"]["int8"]["graph"]["float_ops"]
        lines.append("int8 float ops: " + (", ".join(o["op"] for o in fl) if fl else "none (int8 end to end)"))
    lines.append(f"report: {result.paths['report_md']}")
    return "\n".join(lines)


def _cli():
    import click

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("run_dir")
    @click.option("--int8", "int8", is_flag=True, help="Full-integer int8 model (int8 input and output).")
    @click.option("--float16", is_flag=True, help="Also a float16-weights model.")
    @click.option("--dynamic", is_flag=True, help="Also a dynamic-range (int8 weights) model.")
    @click.option("--out", type=str, default=None, help="Output folder (default: the run folder).")
    @click.option("--calib", type=int, default=None, help=f"Calibration faces for --int8 (default {cal.DEFAULT_CALIB}).")
    @click.option("--data", type=str, default=None, help="The run's data file, if it moved since training.")
    @click.option("--eval-limit", type=int, default=None, help="Evaluate on at most N faces (default: all).")
    @click.option("--max-drop", type=float, default=None,
                  help="Exit 3 when the int8 accuracy drop vs float32 exceeds PP percentage points.")
    @click.option("--eval-faces", type=int, default=rep.DEFAULT_EVAL_FACES, show_default=True,
                  help="Labelled faces written to eval_faces.npz for the device bench (0: none).")
    @click.option("--latency-runs", type=int, default=50, show_default=True, help="Timed runs per latency figure.")
    @click.option("--threads", type=int, default=None, help="'All threads' for latency (default: CPU count).")
    @click.option("--flip-tta", is_flag=True,
                  help=f"Convert the model averaged with its mirror image (2x model time); writes to RUN/{FLIP_TTA_DIR} "
                       "unless --out is given.")
    @click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
    def command(run_dir, int8, float16, dynamic, out, calib, data, eval_limit, max_drop, eval_faces,
                latency_runs, threads, flip_tta, quiet):
        """Convert the Keras model of training run RUN_DIR to TFLite and write report.json/report.md."""
        if calib is not None and not int8:
            raise ConvertError("--calib sets the int8 calibration set size: it needs --int8")
        result = convert_run(run_dir, int8=int8, float16=float16, dynamic=dynamic, out=out,
                             calib=cal.DEFAULT_CALIB if calib is None else calib, data=data,
                             eval_limit=eval_limit, max_drop=max_drop, eval_faces=eval_faces,
                             latency_runs=latency_runs, threads=threads, flip_tta=flip_tta, progress=not quiet)
        click.echo(summary(result))
        return result
    return command


def main(argv: list[str] | None = None) -> int:
    """Entry point: one ``error: ...`` line and a non-zero exit for every expected failure."""
    import click
    try:
        result = _cli().main(args=argv, prog_name="python -m convert", standalone_mode=False)
    except click.exceptions.Exit as e:  # --help
        sys.exit(e.exit_code)
    except click.UsageError as e:
        print(f"error: {e.format_message()} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except click.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    except (ConvertError, cal.CalibrationError, ex.ConversionError, MetadataError, ModelError, OSError) as e:
        msg = " ".join(str(e).split())
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    if isinstance(result, ConvertResult) and result.gate_passed is False:
        g = result.report["gate"]
        print(f"error: int8 accuracy drop {g['drop_pp']:+.2f} pp exceeds --max-drop {g['max_drop_pp']} pp "
              f"(report: {result.paths['report_md']})", file=sys.stderr)
        sys.exit(EXIT_GATE)
    sys.exit(0)
