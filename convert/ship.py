"""``python -m convert ship RUN``: ship the default model (device/models/default/), or another named one,
from a finished training run.

    python -m convert ship RUN [--flip-tta] [--member RUN2 ...] [--dest DIR] [--max-bytes N]
    python -m convert ship docs/runs/vgg_cnn-kd80-bf16 --flip-tta --readme-only

RUN is a run folder (``runs/NAME`` is looked for under the runs root, device/paths.py). --dest
device/models/NAME ships a model ``device/run.py --model NAME`` takes (the FER+ model: --dest
device/models/ferplus). --flip-tta ships RUN/flip-tta (``python -m convert RUN --int8 --flip-tta``: the
model averaged with its mirror image inside the file); --member RUN2 ships an ensemble,
RUN/ensemble[-flip-tta] (``python -m convert RUN --int8 --member RUN2``).

Converts RUN (convert.pipeline.run, as ``python -m convert RUN --int8`` would) unless its outputs are
newer than model.keras and its report is of the kind shipped (int8, flip-averaged exactly when
--flip-tta), refuses an int8 model over --max-bytes (4 MB, the budget for the shipped file), then writes
into DEST one model pair, ``model_int8.tflite`` + ``metadata.json``, with ``report.md`` and a ``README.md``
saying where it came from, its accuracy and how to remake it (a float32 model left there earlier is
removed). --readme-only rewrites only the README, from RUN's records (a run folder, or its archived
records in docs/runs/). Paths in the README are as records hold them (``runs/NAME``): it is committed
and the installer copies it onto every Pi.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from device.atomic import write_bytes, write_text
from device.errors import GateFailed, InputError
from device.metadata import METADATA_NAME
from device.paths import REPO, portable, resolve_run, runs_root_at
from device.provenance import record

from . import results as mr  # the records, read and formatted as docs/RESULTS.md shows them
from .pipeline import wrapped_dir
from .results.ablation import run_commands

PROG = "python -m convert ship"
DEFAULT_DEST = "device/models/default"
MAX_BYTES = 4_000_000  # the shipped file's budget (tests/device/test_device_model.py checks the committed one)
SHIPPED = ("model_int8.tflite", METADATA_NAME, "report.md")
FRESH = ("model_int8.tflite", "model_float32.tflite", "report.json", "report.md", METADATA_NAME)


def from_caller(path: str) -> Path:
    """A folder the caller named: relative to where they are (the work runs from the repository root),
    a record's ``runs/NAME`` under the runs root."""
    p = resolve_run(path)
    return p if p.is_absolute() or Path.cwd().resolve() == REPO else Path.cwd() / p


def check(run: Path, members: list[Path], readme_only: bool) -> None:
    needed = ("metrics.json", "config.json") if readme_only else ("metrics.json", "model.keras")
    for folder in [run, *members]:
        if not folder.is_dir():
            raise InputError(f"run folder not found: {folder}")
        if not all((folder / f).is_file() for f in needed):
            raise InputError(f"{folder} has not finished training (no {' / '.join(needed)} yet): nothing to ship")


def converted(run: Path, src: Path, flip_tta: bool, members: list[Path] = ()) -> bool:
    """src holds a conversion newer than every model.keras in it, with int8 in it, flip-averaged exactly
    when asked, of exactly these members (an old report names them by absolute path, a new one runs/NAME)."""
    report = mr.read_json(src / "report.json")[0] or {}
    keras = max((Path(r) / "model.keras").stat().st_mtime for r in [run, *members])
    same = [resolve_run(m).resolve() for m in mr.g(report, "run", "members", default=None) or []] == \
        [Path(m).resolve() for m in members]
    return (all((src / f).is_file() and (src / f).stat().st_mtime > keras for f in FRESH) and same
            and "int8" in (report.get("models") or {}) and bool(mr.g(report, "run", "flip_tta")) == flip_tta)


def convert(run: Path, flip_tta: bool, members: list[Path], via: str) -> None:
    """``python -m convert RUN --int8 [--flip-tta] [--member RUN2 ...]``, recorded as that command."""
    from .pipeline import run as convert_run
    from .report import summary
    argv = [str(run), "--int8", *(["--flip-tta"] if flip_tta else []), *(a for m in members for a in ("--member", str(m)))]
    options = {"run_dir": str(run), "int8": True, "flip_tta": flip_tta, "members": [str(m) for m in members]}
    result = convert_run(run, int8=True, flip_tta=flip_tta, members=tuple(members),
                         provenance={**record("python -m convert", argv, options), "via": via})
    print(summary(result.report, result.paths["report_md"]))


def ship(run: Path, src: Path, dest: Path, max_bytes: int, flip_tta: bool, members: list[Path] = ()) -> None:
    flags = (" --flip-tta" if flip_tta else "") + "".join(f" --member {portable(m)}" for m in members)
    if converted(run, src, flip_tta, members):
        print(f"convert: {src} is already converted (report.json newer than model.keras)", file=sys.stderr)
    else:
        print(f"convert: python -m convert {portable(run)} --int8{flags}", file=sys.stderr)
        convert(run, flip_tta, members, via=f"{PROG} {portable(run)}{flags}")
    size = (src / "model_int8.tflite").stat().st_size
    if size > max_bytes:
        raise GateFailed(f"{src}/model_int8.tflite is {size} bytes, over the {max_bytes}-byte limit for the shipped model")
    for name in SHIPPED:
        write_bytes(dest / name, (src / name).read_bytes())
    (dest / "model_float32.tflite").unlink(missing_ok=True)  # one model pair: never a float32 of another run beside it
    print(f"shipped: {dest} (from {portable(run)}; int8 {size} bytes)", file=sys.stderr)


def training_commands(runs: list[Path]) -> list[str]:
    """The recorded training commands that remake ``runs``, each after the runs it starts from
    (--init-from) or learns from (--teacher), each once."""
    done, lines = set(), []

    def visit(run: Path, sha: dict):
        folder = resolve_run(run)  # a record's runs/NAME, on this machine
        if folder.resolve() in done:
            return
        done.add(folder.resolve())
        config = (mr.read_json(folder / "config.json")[0]  # the run folder, else its archived records
                  or mr.read_json(mr.RECORDS / run.name / "config.json")[0] or {})
        if not config and (str(run) in sha or run.suffix == ".tflite" or any(folder.glob("*.tflite"))):
            found = committed_model(sha.get(str(run)))
            lines.append(f"# {mr.shown_path(run)}: a converted model, not a training run"
                         + (f" (sha256 {sha[str(run)][:16]}...)" if sha.get(str(run)) else "")
                         + (f": the one committed as {found[1]} in {found[0]}; put it there first (git show "
                            f"{found[0]}:{found[1]}, and metadata.json beside it)" if found else
                            f": the version of it in git before this one (git log -- {mr.shown_path(run)}) says how it was made"))
            return
        files = {}
        for f in config.get("teacher_files") or []:  # a converted teacher's sha256, recorded under its own path
            if f["path"].endswith(".tflite"):  # (its record says what it is, whether or not it is on this machine)
                files[f["path"]] = files[str(Path(f["path"]).parent)] = f["sha256"]
        for dep in [config.get("init_from"), *(config.get("teachers") or [])]:
            if dep:
                visit(Path(dep), files)
        prov = mr.recorded(config)
        lines.extend(replaced_source(config.get("recovered_from") or {}))
        if prov.get("recovered_from"):
            lines.append(f"# recovered from {prov['recovered_from']}")
        start, *resumed = run_commands(prov) or [f"# {mr.shown_path(run)}: training command not recorded"]
        lines.append(start)
        lines.extend(f"# resumed with changed options (the run as made): {c}" for c in resumed)

    for run in runs:
        visit(Path(run), {})
    return lines


def replaced_source(rec: dict) -> list[str]:
    """A comment when the file a run was recovered from (convert recover) has since been replaced in the
    repository (a model shipped from that run): the recover command must be given the committed old file."""
    from device.provenance import file_sha256
    path = REPO / rec.get("model", "")
    if not rec.get("sha256") or (path.is_file() and file_sha256(path) == rec["sha256"]):
        return []
    found = committed_model(rec["sha256"])
    return [f"# {rec['model']} has been replaced since; recover the file committed in {found[0]}: put "
            f"git show {found[0]}:{found[1]} (and its metadata.json) there first" if found else
            f"# {rec['model']} has been replaced since (sha256 {rec['sha256'][:16]}...): recover that older file"]


def committed_model(sha256: str | None) -> tuple[str, str] | None:
    """(commit, path) of a model shipped under device/models/ whose bytes have this sha256, or None: an
    out-of-tree teacher is often a pinned copy of an old default, and git still holds that file."""
    if not sha256:
        return None
    import hashlib
    import subprocess

    def git(*args) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True)
    log = git("log", "--format=@%h", "--name-only", "--", "device/models/*/*.tflite")
    commit = None
    for line in log.stdout.decode().splitlines() if log.returncode == 0 else []:
        if line.startswith("@"):
            commit = line[1:]
        elif line.strip():
            blob = git("show", f"{commit}:{line.strip()}")
            if blob.returncode == 0 and hashlib.sha256(blob.stdout).hexdigest() == sha256:
                return commit, line.strip()
    return None


def recipe_line(r) -> str:
    """How the run was made: its training recipe, or the file a recovered run (convert recover) was rebuilt from."""
    rec = r.cfg.get("recovered_from")
    if isinstance(rec, dict) and "model" in rec:  # a string: records rebuilt from an earlier RESULTS.md
        return (f"- Recovered by `python -m convert recover` from `{rec.get('model')}` (sha256 "
                f"`{str(rec.get('sha256'))[:16]}...`): that file's weights in a Keras run folder, not a training run; "
                f"how the file was trained is in the README shipped beside it (git log -- "
                f"{Path(str(rec.get('model'))).parent}/README.md)")
    return (mr.recipe_text(r.cfg) + f"; epochs run {r.metrics.get('epochs_run', '?')} of {mr.epochs_planned(r) or '?'} "
            f"planned (best validation accuracy {mr.pct(r.metrics.get('best_val_accuracy'))} at epoch "
            f"{r.metrics.get('best_epoch', '?')})")


def calibration_lines(shipped) -> list[str]:
    """The temperature convert baked into the file (convert/temperature.py); none for older conversions."""
    t = mr.g(shipped.report, "temperature", default={})
    if not t.get("calibrated"):
        return []
    before = mr.g(t, "keras_uncalibrated", "test", "ece")
    after = mr.g(shipped.report, "models", "int8", "reliability", "test", "ece")
    ece = lambda x: "?" if x is None else f"{x:.3f}"  # noqa: E731
    return [f"- Calibrated probabilities: temperature {t.get('temperature')} fitted on {t.get('n')} validation faces and "
            f"folded into the file; expected calibration error (10 bins, top-1) on "
            f"{mr.g(shipped.report, 'evaluation', 'split', default='?')}: int8 {ece(after)}, the model before "
            f"calibration {ece(before)}"]


def readme(run: Path, flip_tta: bool, members: list[Path] = (), dest: Path = Path(DEFAULT_DEST),
           max_bytes: int = MAX_BYTES) -> str:
    r = mr.load_run(run)
    sub = wrapped_dir(flip_tta, len(members))
    shipped = next((w for w in [r.flip, *r.ensembles] if w and w.name.endswith("/" + str(sub))), None) if sub else r
    if shipped is None:
        raise InputError(f"{run}/{sub}/report.json not found: convert it first (python -m convert {portable(run)} --int8"
                         + (" --flip-tta" if flip_tta else "") + "".join(f" --member {portable(m)}" for m in members) + ")")
    k, f32, i8 = (mr.scores(shipped, n) for n in ("keras", "float32", "int8"))
    origin = portable(mr.g(r.archive, "from") or mr.shown_path(run))
    data = mr.g(r.metadata, "data", default={})
    flip = (" --flip-tta" if flip_tta else "") + "".join(f" --member {mr.shown_path(m)}" for m in members)
    name = Path(dest).name
    ferplus = r.label_set == "ferplus"
    dest_flag = "" if Path(dest).resolve() == (REPO / DEFAULT_DEST).resolve() else f" --dest {mr.shown_path(dest)}"
    dest_flag += "" if int(max_bytes) == MAX_BYTES else f" --max-bytes {max_bytes}"  # what it was shipped under
    return "\n".join([
        "# The default model" if name == "default" else f"# The `{name}` model", "",
        ("`device/run.py` uses `model_int8.tflite` and `metadata.json` from this folder when no `--model` is given"
         if name == "default" else f"`device/run.py --model {name}` uses `model_int8.tflite` and `metadata.json` "
         "from this folder") + f" ({len(r.metadata.get('labels') or [])} labels: {', '.join(r.metadata.get('labels') or [])}). "
        f"Made by `{PROG}`; do not edit by hand.", "",
        f"- From run folder: `{origin}` ({r.model}, {mr.g(r.metadata, 'params', default=0):,} parameters)"
        + (", converted with `--flip-tta`: the file classifies each face and its mirror image and averages the two "
           "probability vectors (twice the model time; the device runtime needs nothing extra)" if flip_tta else "")
        + (f"; an ensemble: the file also holds the model of {', '.join(f'`{mr.shown_path(m)}`' for m in members)} "
           f"(same data and split) and averages all {1 + len(members)} models' "
           f"probabilities ({1 + len(members)}x the time of one)" if members else ""),
        recipe_line(r), *calibration_lines(shipped),
        f"- Data: `{data.get('path', r.cfg.get('data', '?'))}`, sha256 `{data.get('sha256', '?')}`",
        f"- int8 model on {mr.split_text(shipped)}: **{mr.pct(i8.get('accuracy'), 2)}** accuracy"
        + (" against FER+ majority labels" if ferplus else "") + " (macro-F1 "
        f"{mr.pct(i8.get('macro_f1'), 2)}); float32 {mr.pct(f32.get('accuracy'), 2)}, Keras {mr.pct(k.get('accuracy'), 2)}; "
        f"int8 drop vs float32 {mr.pp(mr.g(i8, 'drop_vs_float32', 'accuracy_pp'))}",
        f"- Converted {mr.g(shipped.report, 'date', default='?')} on {mr.machine_text(mr.g(shipped.report, 'machine'))}",
        "", "Files:", "",
        f"- `model_int8.tflite`: {mr.size(i8.get('size_bytes'))}, int8 in and out",
        "- `metadata.json`: labels, input contract, data and split of the run",
        "- `report.md`: the conversion report (its confusion-matrix images stay in the run folder)",
        f"- not shipped: `model_float32.tflite` ({mr.size(f32.get('size_bytes'))}), in `{origin}"
        f"{'/' + sub if sub else ''}` with the rest of the conversion", "",
        "Remake it (from the repository root):", "", "```bash", *training_commands([run, *members]),
        f"{PROG} {origin}{flip}{dest_flag}   # converts (python -m convert RUN --int8{flip}) if needed, then copies",
        "```", ""])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run")
@click.option("--flip-tta", is_flag=True, help="Ship RUN/flip-tta: the model averaged with its mirror image.")
@click.option("--member", "members", multiple=True, metavar="RUN2",
              help="Another run averaged with RUN inside the file (convert --member; repeatable).")
@click.option("--dest", default=DEFAULT_DEST, show_default=True, help="Where the shipped model lives.")
@click.option("--max-bytes", type=click.IntRange(1), default=MAX_BYTES, show_default=True,
              help="Largest int8 model shipped.")
@click.option("--readme-only", is_flag=True, help="Rewrite only DEST/README.md, from RUN's records.")
@click.option("--runs", type=click.Path(file_okay=False), default=None,
              help="Where run folders live on this machine (default: $FERLITE_RUNS, else runs/ in the repository); "
                   "a run there is runs/NAME.")
def cli(run, flip_tta, members, dest, max_bytes, readme_only, runs):
    """Ship RUN's int8 model (converting it if needed) into DEST with its report and a README."""
    with runs_root_at(runs):
        run_dir, dest_dir, members = from_caller(run), from_caller(dest), [from_caller(m) for m in members]
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.chdir(REPO)  # the defaults, and the paths the README shows, are relative to the repository
        check(run_dir, members, readme_only)
        sub = wrapped_dir(flip_tta, len(members))
        if not readme_only:
            ship(run_dir, run_dir / sub if sub else run_dir, dest_dir, max_bytes, flip_tta, members)
        write_text(dest_dir / "README.md", readme(run_dir, flip_tta, members, dest_dir, max_bytes))
