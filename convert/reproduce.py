"""Reproduce the results: for each model, train with the paper's recipe (--preset paper), convert to
int8, bench on a clip, then archive the runs' records and regenerate docs/RESULTS.md.

    python scripts/reproduce.py [FER2013_CSV [CLIP]] [--models M ...] [--epochs N] [--split random80|official]
                                [--weights imagenet|none|FILE] [--labels fer2013|ferplus] [--runs runs]
                                [--results docs/RESULTS.md]

Each option falls back to its environment variable (DATA, CLIP, MODELS, EPOCHS, SPLIT, WEIGHTS, RUNS,
RESULTS, as scripts/reproduce.sh read them, and RECORDS, LABELS), then to its default: our FER2013 copy and test
clip in ../shared/data, the paper's three models (train/registry.py), the paper preset's epochs
(train/config.py), random80 (the paper's protocol; official reports on PublicTest), imagenet (a
Keras download), runs/, docs/RESULTS.md, docs/runs/. Run folders are RUNS/<model>-paper-<split>;
``--weights none`` is a random resnet50 backbone, NOT the paper's method: its folder ends in
-randinit and every figure of it is labelled so. ``--labels ferplus`` trains the same recipe on FER+
majority labels (the votes found beside the data, as ``train --labels ferplus`` finds them), into
RUNS/<model>-paper-<split>-ferplus: how the paper's numbers look on FER+'s labels.

Rerun after an interruption and it resumes: training continues from its last finished epoch
(train --resume), a finished run is not touched, convert and bench are skipped when their outputs
are newer than model.keras. Every stage records its own command (``provenance`` in config.json,
report.json, bench.json); RUN/reproduce.json adds this script's command and the git commit. One
model failing does not stop the others; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from device.atomic import write_json
from device.errors import EXIT_INTERRUPTED, InputError, RunFailed, UsageError, guarded, message_for
from device.paths import REPO as ROOT
from device.paths import portable_record
from device.provenance import command_line, now_iso, record
from train.config import LABEL_SOURCES, PRESETS, SPLITS
from train.ferplus import default_votes_path
from train.registry import MODELS, PAPER_MODELS, normalize_weights

from .results import DEFAULT_DATA, read_json
from .results import cli as make_results  # python -m convert results

PROG = "python scripts/reproduce.py"
ENV = ("DATA", "CLIP", "MODELS", "EPOCHS", "SPLIT", "WEIGHTS", "RUNS", "RESULTS", "RECORDS", "LABELS")
DEFAULTS = {"data": DEFAULT_DATA, "clip": "../shared/data/faces/fer_test.mp4",
            "models": " ".join(PAPER_MODELS), "epochs": str(PRESETS["paper"]["epochs"]), "split": "random80",
            "weights": "imagenet", "runs": "runs", "results": "docs/RESULTS.md", "records": "docs/runs",
            "labels": "fer2013"}
CONVERTED = ("model_float32.tflite", "model_int8.tflite", "eval_faces.npz", "report.json")


def parse_opt(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", help="FER2013 .csv/.csv.gz (env DATA)")
    ap.add_argument("clip", nargs="?", help="clip for the bench's loop fps (env CLIP)")
    ap.add_argument("--models", nargs="+", help=f"in order (env MODELS; default: {DEFAULTS['models']})")
    ap.add_argument("--epochs", help="epochs per model (env EPOCHS; default: the paper preset's)")
    ap.add_argument("--split", help="random80 (the paper's protocol) or official (env SPLIT)")
    ap.add_argument("--weights", help="resnet50 backbone: imagenet, none (NOT the paper's method) or a file (env WEIGHTS)")
    ap.add_argument("--runs", help="where the run folders go (env RUNS; default runs)")
    ap.add_argument("--results", help="the generated results file (env RESULTS; default docs/RESULTS.md)")
    ap.add_argument("--labels", help="fer2013 (the file's own) or ferplus (FER+ majority labels) (env LABELS)")
    ap.add_argument("--records", help="the runs' archived records (env RECORDS; default docs/runs)")
    opt = ap.parse_args(argv)
    for key in DEFAULTS:  # flag, else the shell script's environment variable, else the default
        given = getattr(opt, key) or os.environ.get(key.upper())
        if isinstance(given, str) and key in ("data", "clip", "runs", "results", "records"):
            given = from_caller(given)
        setattr(opt, key, given or DEFAULTS[key])
    if normalize_weights(opt.weights) not in (None, "imagenet"):
        opt.weights = from_caller(opt.weights)
    opt.models = opt.models.split() if isinstance(opt.models, str) else opt.models
    return opt


def from_caller(path: str) -> str:
    """A path the caller gave, relative to where they are; the run itself works from the repository root."""
    return path if Path(path).is_absolute() or Path.cwd().resolve() == ROOT else str(Path.cwd() / path)


def check(opt: argparse.Namespace) -> None:
    """Every setting, before any stage runs (a bad one would otherwise start training)."""
    unknown = [m for m in opt.models if m not in MODELS]
    if unknown:
        raise UsageError(f"unknown model '{unknown[0]}' in --models/MODELS (one of: {' '.join(MODELS)})")
    if opt.split not in SPLITS:
        raise UsageError(f"--split/SPLIT must be {' or '.join(SPLITS)}, got '{opt.split}'")
    if not (str(opt.epochs).isdigit() and int(opt.epochs) > 0):
        raise UsageError(f"--epochs/EPOCHS must be a positive whole number, got '{opt.epochs}'")
    opt.epochs = int(opt.epochs)
    if not Path(opt.data).exists():
        raise InputError(f"FER2013 data not found: {opt.data} (give its path as the first argument or DATA=...)")
    if opt.labels not in LABEL_SOURCES:
        raise UsageError(f"--labels/LABELS must be {' or '.join(LABEL_SOURCES)}, got '{opt.labels}'")
    if opt.labels == "ferplus" and default_votes_path(opt.data) is None:
        raise InputError(f"FER+ votes not found beside {opt.data} or in its ../ferplus/ (ferplus_labels.csv)")
    if not Path(opt.clip).is_file():
        raise InputError(f"clip not found: {opt.clip} (give it as the second argument or CLIP=...)")
    if normalize_weights(opt.weights) not in (None, "imagenet") and not Path(opt.weights).is_file():
        raise InputError(f"--weights/WEIGHTS {opt.weights}: no such file (expected imagenet, none or a weights file)")


def invocation(argv) -> str:
    """This script's command as typed, with the environment variables it read in front."""
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in ENV if os.environ.get(k)]
    return " ".join(env + [command_line(PROG, argv)])


def say(text: str) -> None:
    print(f"\n== {text}", file=sys.stderr, flush=True)


# --- the three stages, as functions -------------------------------------------------------------

def train_args(model: str, data: str, split: str, epochs: int, weights: str | None, run_dir: Path,
               labels: str = "fer2013"):
    """(the ``python -m train`` arguments, the TrainConfig they give): what runs is what gets recorded."""
    from train.config import resolve
    votes = str(default_votes_path(data)) if labels == "ferplus" else None
    ferplus = {"labels": labels, "ferplus": votes, "label_scheme": "majority"} if votes else {}
    argv = ["--data", data, "--model", model, "--preset", "paper", "--split", split, "--epochs", str(epochs),
            *(["--weights", weights] if weights else []),
            *(a for k, v in ferplus.items() for a in (f"--{k.replace('_', '-')}", v)), "--out", str(run_dir), "--resume"]
    return argv, resolve("paper", data=data, model=model, split=split, epochs=epochs, weights=weights,
                         out=str(run_dir), resume=True, **ferplus)


def train(model: str, data: str, split: str, epochs: int, weights: str | None, run_dir: Path, via: str,
          labels: str = "fer2013") -> None:
    argv, cfg = train_args(model, data, split, epochs, weights, run_dir, labels)
    from train.fit import train_run  # Keras loads here, once the settings are known to be good
    train_run(cfg, provenance={**record("python -m train", argv, cfg), "via": via})


def convert(run_dir: Path, via: str, flip_tta: bool = False, members: tuple[str, ...] = ()) -> None:
    from convert.pipeline import run as convert_run
    from convert.report import summary
    argv = [str(run_dir), "--int8", *(["--flip-tta"] if flip_tta else []), *(a for m in members for a in ("--member", m))]
    options = {"run_dir": str(run_dir), "int8": True, "flip_tta": flip_tta, "members": list(members)}
    result = convert_run(run_dir, int8=True, flip_tta=flip_tta, members=members, provenance={
        **record("python -m convert", argv, options), "via": via})
    print(summary(result.report, result.paths["report_md"]))


def bench(run_dir: Path, clip: str, via: str) -> None:
    from device.bench import format_table, run_bench
    from device.run import BENCH_PROG
    from device.run import bench as bench_command  # its option defaults are the one source of them
    defaults = {p.name: p.default for p in bench_command.params if p.name in ("runs", "warmup", "detect_every", "detector")}
    paths = {"float_path": run_dir / "model_float32.tflite", "int8_path": run_dir / "model_int8.tflite",
             "faces_path": run_dir / "eval_faces.npz"}
    out = run_dir / "bench.json"
    argv = ["--float", paths["float_path"], "--int8", paths["int8_path"], "--faces", paths["faces_path"],
            "--video", clip, "--threads", "1", "--json", out]
    result = run_bench(*paths.values(), video=clip, threads=(1,), **defaults, log=lambda s: print(s, file=sys.stderr))
    print(format_table(result))
    options = {**paths, "video": clip, "threads": [1], **defaults, "max_frames": None, "json_path": out}
    write_json(out, portable_record({**result, "provenance": {**record(BENCH_PROG, argv, options), "via": via}}))


# --- what is already done -----------------------------------------------------------------------

def train_done(run_dir: Path, epochs: int, weights: str | None) -> bool:
    """A finished run of exactly ``epochs`` (and these backbone weights): train --resume would only re-score it."""
    cfg, state = (read_json(run_dir / f)[0] for f in ("config.json", "state.json"))
    if not (cfg and state and (run_dir / "metrics.json").is_file() and (run_dir / "model.keras").is_file()):
        return False
    planned = int(cfg.get("epochs", -1)) + int(cfg.get("fine_tune_epochs") or 0)
    return (int(cfg.get("epochs", -1)) == epochs and int(state.get("epoch", 0)) >= planned
            and (weights is None or normalize_weights(cfg.get("weights")) == normalize_weights(weights)))


def newer_than(run_dir: Path, names, than: str = "model.keras") -> bool:
    ref = run_dir / than
    return ref.is_file() and all((run_dir / n).is_file() and (run_dir / n).stat().st_mtime > ref.stat().st_mtime
                                 for n in names)


def git_state() -> dict | None:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain"))} if commit else None


def note_stage(run_dir: Path, stage: str, via: dict) -> None:
    """RUN/reproduce.json: this script's command and commit, and when it last ran each stage here."""
    doc = read_json(run_dir / "reproduce.json")[0] or {}
    write_json(run_dir / "reproduce.json", {"format": "ferlite-reproduce/2", "git": git_state(), "provenance": via,
                                            "stages": {**(doc.get("stages") or {}), stage: now_iso()}})


def one_model(model: str, data: str, clip: str, split: str, epochs: int, weights: str, runs: str, via: dict,
              labels: str = "fer2013") -> None:
    backbone = MODELS[model].backbone
    run_dir = Path(runs) / (f"{model}-paper-{split}" + ("-randinit" if backbone and normalize_weights(weights) is None
                                                        else "") + ("-ferplus" if labels == "ferplus" else ""))
    if run_dir.name.endswith("-randinit"):
        print(f"warning: {model} with --weights none: a random-init backbone, NOT the paper's method ({run_dir})",
              file=sys.stderr)
    say(f"{model} -> {run_dir} (preset paper, split {split}, {epochs} epochs{f', weights {weights}' if backbone else ''})")
    if train_done(run_dir, epochs, weights if backbone else None):
        print(f"train: {run_dir} already finished {epochs} epochs; skipped", file=sys.stderr)
    else:
        train(model, data, split, epochs, weights if backbone else None, run_dir, via["command"], labels)
        note_stage(run_dir, "train", via)
    if newer_than(run_dir, CONVERTED):
        print(f"convert: {run_dir}/report.json is newer than model.keras; skipped", file=sys.stderr)
    else:
        convert(run_dir, via["command"])
        note_stage(run_dir, "convert", via)
    if newer_than(run_dir, ["bench.json"]) and newer_than(run_dir, ["bench.json"], than="model_int8.tflite"):
        print(f"bench: {run_dir}/bench.json is newer than the models; skipped", file=sys.stderr)
    else:
        bench(run_dir, clip, via["command"])
        note_stage(run_dir, "bench", via)


def run(data: str, clip: str, models: list[str], epochs: int, split: str, weights: str, runs: str, results: str,
        records: str, labels: str = "fer2013", argv=None) -> None:
    via = {**record(PROG, argv), "command": invocation(sys.argv[1:] if argv is None else argv)}
    failed = []
    for model in models:
        try:
            one_model(model, data, clip, split, epochs, weights, runs, via, labels)
        except Exception as e:  # noqa: BLE001 - one model failing does not stop the others
            if os.environ.get("FERLITE_DEBUG"):
                raise
            print(f"error: {model} failed ({message_for(e)}); going on with the next model", file=sys.stderr)
            failed.append(model)
    say(f"results -> {results}")
    try:
        make_results.run(runs=[Path(runs)] if Path(runs).is_dir() else [], archive=True, records=Path(records),
                         out=results, peer=None)
    except Exception as e:  # noqa: BLE001
        print(f"error: make_results failed ({message_for(e)})", file=sys.stderr)
        failed.append("make_results")
    if failed:
        raise RunFailed(f"reproduce: FAILED: {' '.join(failed)} (rerun to resume)")
    print(f"reproduce: done ({' '.join(models)}; epochs {epochs}; split {split}) -> {results}", file=sys.stderr)


def main(opt: argparse.Namespace, argv=None) -> int:
    def go():
        os.chdir(ROOT)  # the defaults, and the commands each stage records, are relative to the repository
        check(opt)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        run(**vars(opt), argv=argv)
    return guarded(go, interrupted=EXIT_INTERRUPTED,
                   interrupted_message="interrupted; finished epochs are saved, rerun to resume")


if __name__ == "__main__":
    sys.exit(main(parse_opt()))
