#!/usr/bin/env python3
"""Ship the default model (device/models/default/), or another named one, from a finished training run.

    python scripts/make_default_model.py [RUN] [--flip-tta] [--member RUN2 ...] [--dest DIR] [--max-bytes N]
    python scripts/make_default_model.py docs/runs/vanilla_cnn-official --flip-tta --readme-only

RUN defaults to runs/vanilla_cnn-official. --dest device/models/NAME ships a model ``device/run.py --model NAME``
takes (the FER+ model: --dest device/models/ferplus). Each option falls back to the environment variable
scripts/make_default_model.sh read (FLIP_TTA=0|1, DEST, MAX_BYTES). --flip-tta ships RUN/flip-tta
(``python -m convert RUN --int8 --flip-tta``: the model averaged with its mirror image inside the file);
--member RUN2 ships an ensemble, RUN/ensemble[-flip-tta] (``convert RUN --int8 --member RUN2``).

Converts RUN (convert.pipeline.run, as ``python -m convert RUN --int8`` would) unless its outputs are
newer than model.keras and its report is of the kind shipped (int8, flip-averaged exactly when
--flip-tta), refuses an int8 model over --max-bytes (4 MB, issue 9's budget for the shipped file), then writes into DEST one model pair,
``model_int8.tflite`` + ``metadata.json``, with ``report.md`` and a ``README.md`` saying where it came
from, its accuracy and how to remake it (a float32 model left there earlier is removed). --readme-only
rewrites only the README, from RUN's records (a run folder, or its archived records in docs/runs/).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
import results as mr  # noqa: E402  (scripts/results/: the records, read and formatted as docs/RESULTS.md shows them)
from device.atomic import write_bytes, write_text  # noqa: E402
from device.errors import GateFailed, InputError, UsageError, guarded  # noqa: E402
from convert.pipeline import wrapped_dir  # noqa: E402
from device.metadata import METADATA_NAME  # noqa: E402
from reproduce import convert, from_caller  # noqa: E402  (convert.pipeline.run, recording the command)
from results.ablation import run_commands  # noqa: E402

PROG = "python scripts/make_default_model.py"
DEFAULTS = {"run": "runs/vanilla_cnn-official", "dest": "device/models/default", "max_bytes": "4000000",
            "flip_tta": "0"}
SHIPPED = ("model_int8.tflite", METADATA_NAME, "report.md")
FRESH = ("model_int8.tflite", "model_float32.tflite", "report.json", "report.md", METADATA_NAME)


def parse_opt(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", help=f"the training run folder (default {DEFAULTS['run']})")
    ap.add_argument("--flip-tta", action="store_const", const="1", help="ship RUN/flip-tta (env FLIP_TTA=1)")
    ap.add_argument("--member", action="append", default=[], metavar="RUN2",
                    help="another run averaged with RUN inside the file (convert --member; repeatable)")
    ap.add_argument("--dest", help=f"where the default model lives (env DEST; default {DEFAULTS['dest']})")
    ap.add_argument("--max-bytes", help="largest int8 model shipped (env MAX_BYTES; default 4000000)")
    ap.add_argument("--readme-only", action="store_true", help="rewrite DEST/README.md from RUN's records only")
    opt = ap.parse_args(argv)
    for key in DEFAULTS:  # flag, else the shell script's environment variable, else the default
        given = getattr(opt, key) or (os.environ.get(key.upper()) if key != "run" else None)
        setattr(opt, key, from_caller(given) if given and key in ("run", "dest") else given or DEFAULTS[key])
    opt.member = [from_caller(m) for m in opt.member]
    return opt


def check(run: str, flip_tta: str, max_bytes: str, readme_only: bool, member: list[str] = (), **_) -> None:
    if flip_tta not in ("0", "1"):
        raise UsageError(f"FLIP_TTA must be 0 or 1, got '{flip_tta}'")
    if not max_bytes.isdigit():
        raise UsageError(f"--max-bytes/MAX_BYTES must be a whole number of bytes, got '{max_bytes}'")
    if not Path(run).is_dir():
        raise InputError(f"run folder not found: {run}")
    needed = ("metrics.json", "config.json") if readme_only else ("metrics.json", "model.keras")
    for folder in [run, *member]:
        if not Path(folder).is_dir():
            raise InputError(f"run folder not found: {folder}")
        if not all((Path(folder) / f).is_file() for f in needed):
            raise InputError(f"{folder} has not finished training (no {' / '.join(needed)} yet): nothing to ship")


def converted(run: Path, src: Path, flip_tta: bool, members: list[str] = ()) -> bool:
    """src holds a conversion newer than every model.keras in it, with int8 in it, flip-averaged exactly
    when asked, of exactly these members."""
    report = mr.read_json(src / "report.json")[0] or {}
    keras = max((Path(r) / "model.keras").stat().st_mtime for r in [run, *members])
    same = [Path(m).resolve() for m in mr.g(report, "run", "members", default=None) or []] == \
        [Path(m).resolve() for m in members]
    return (all((src / f).is_file() and (src / f).stat().st_mtime > keras for f in FRESH) and same
            and "int8" in (report.get("models") or {}) and bool(mr.g(report, "run", "flip_tta")) == flip_tta)


def ship(run: Path, src: Path, dest: Path, max_bytes: int, flip_tta: bool, members: list[str] = ()) -> None:
    if converted(run, src, flip_tta, members):
        print(f"convert: {src} is already converted (report.json newer than model.keras)", file=sys.stderr)
    else:
        flags = (" --flip-tta" if flip_tta else "") + "".join(f" --member {m}" for m in members)
        print(f"convert: python -m convert {run} --int8{flags}", file=sys.stderr)
        convert(run, via=f"{PROG} {run}{flags}", flip_tta=flip_tta, members=tuple(members))
    size = (src / "model_int8.tflite").stat().st_size
    if size > max_bytes:
        raise GateFailed(f"{src}/model_int8.tflite is {size} bytes, over the {max_bytes}-byte limit for the shipped model")
    for name in SHIPPED:
        write_bytes(dest / name, (src / name).read_bytes())
    (dest / "model_float32.tflite").unlink(missing_ok=True)  # one model pair: never a float32 of another run beside it
    print(f"shipped: {dest} (from {run}; int8 {size} bytes)", file=sys.stderr)


def training_commands(runs: list[Path]) -> list[str]:
    """The recorded training commands that remake ``runs``, each after the runs it starts from
    (--init-from) or learns from (--teacher), each once."""
    done, lines = set(), []

    def visit(run: Path, sha: dict):
        if run.resolve() in done:
            return
        done.add(run.resolve())
        config = (mr.read_json(run / "config.json")[0]  # the run folder, else its archived records
                  or mr.read_json(mr.RECORDS / run.name / "config.json")[0] or {})
        if not config and (run.suffix == ".tflite" or any(run.glob("*.tflite"))):
            found = committed_model(sha.get(str(run)))
            lines.append(f"# {mr.shown_path(run)}: a converted model, not a training run"
                         + (f" (sha256 {sha[str(run)][:16]}...)" if sha.get(str(run)) else "")
                         + (f": the one committed as {found[1]} in {found[0]}; put it there first (git show "
                            f"{found[0]}:{found[1]}, and metadata.json beside it)" if found else
                            f": the version of it in git before this one (git log -- {mr.shown_path(run)}) says how it was made"))
            return
        files = {}
        for f in config.get("teacher_files") or []:  # a .tflite teacher's sha256, recorded under its own path
            files[f["path"]] = files[str(Path(f["path"]).parent)] = f["sha256"]
        for dep in [config.get("init_from"), *(config.get("teachers") or [])]:
            if dep:
                visit(Path(dep), files)
        prov = mr.recorded(config)
        if prov.get("recovered_from"):
            lines.append(f"# recovered from {prov['recovered_from']}")
        start, *resumed = run_commands(prov) or [f"# {mr.shown_path(run)}: training command not recorded"]
        lines.append(start)
        lines.extend(f"# resumed with changed options (the run as made): {c}" for c in resumed)

    for run in runs:
        visit(Path(run), {})
    return lines


def committed_model(sha256: str | None) -> tuple[str, str] | None:
    """(commit, path) of a model shipped under device/models/ whose bytes have this sha256, or None: an
    out-of-tree teacher is often a pinned copy of an old default, and git still holds that file."""
    if not sha256:
        return None
    import hashlib
    import subprocess

    def git(*args) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True)
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


def readme(run: Path, flip_tta: bool, members: list[str] = (), dest: str = DEFAULTS["dest"],
           max_bytes: str = DEFAULTS["max_bytes"]) -> str:
    r = mr.load_run(run)
    sub = wrapped_dir(flip_tta, len(members))
    shipped = next((w for w in [r.flip, *r.ensembles] if w and w.name.endswith("/" + str(sub))), None) if sub else r
    if shipped is None:
        raise InputError(f"{run}/{sub}/report.json not found: convert it first (python -m convert {run} --int8"
                         + (" --flip-tta" if flip_tta else "") + "".join(f" --member {m}" for m in members) + ")")
    k, f32, i8 = (mr.scores(shipped, n) for n in ("keras", "float32", "int8"))
    origin = mr.g(r.archive, "from") or mr.shown_path(run)
    data = mr.g(r.metadata, "data", default={})
    flip = (" --flip-tta" if flip_tta else "") + "".join(f" --member {mr.shown_path(Path(m))}" for m in members)
    name = Path(dest).name
    ferplus = r.label_set == "ferplus"
    dest_flag = "" if Path(dest).resolve() == (ROOT / DEFAULTS["dest"]).resolve() else f" --dest {mr.shown_path(Path(dest))}"
    dest_flag += "" if str(max_bytes) == DEFAULTS["max_bytes"] else f" --max-bytes {max_bytes}"  # what it was shipped under
    return "\n".join([
        "# The default model" if name == "default" else f"# The `{name}` model", "",
        ("`device/run.py` uses `model_int8.tflite` and `metadata.json` from this folder when no `--model` is given"
         if name == "default" else f"`device/run.py --model {name}` uses `model_int8.tflite` and `metadata.json` "
         "from this folder") + f" ({len(r.metadata.get('labels') or [])} labels: {', '.join(r.metadata.get('labels') or [])}). "
        "Made by `scripts/make_default_model.py`; do not edit by hand.", "",
        f"- From run folder: `{origin}` ({r.model}, {mr.g(r.metadata, 'params', default=0):,} parameters)"
        + (", converted with `--flip-tta`: the file classifies each face and its mirror image and averages the two "
           "probability vectors (twice the model time; the device runtime needs nothing extra)" if flip_tta else "")
        + (f"; an ensemble: the file also holds the model of {', '.join(f'`{mr.shown_path(Path(m))}`' for m in members)} "
           f"(same data and split) and averages all {1 + len(members)} models' "
           f"probabilities ({1 + len(members)}x the time of one)" if members else ""),
        mr.recipe_text(r.cfg) + f"; epochs run {r.metrics.get('epochs_run', '?')} of {mr.epochs_planned(r) or '?'} "
        f"planned (best validation accuracy {mr.pct(r.metrics.get('best_val_accuracy'))} at epoch "
        f"{r.metrics.get('best_epoch', '?')})",
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
        "Remake it (from the repository root):", "", "```bash", *training_commands([run, *map(Path, members)]),
        f"python scripts/make_default_model.py {origin}{flip}{dest_flag}   # converts (python -m convert RUN --int8{flip}) "
        "if needed, then copies", "```", ""])


def run(run: str, dest: str, max_bytes: str, flip_tta: str, readme_only: bool, member: list[str] = ()) -> None:
    check(run, flip_tta, max_bytes, readme_only, member)
    run_dir, dest_dir, flip = Path(run), Path(dest), flip_tta == "1"
    sub = wrapped_dir(flip, len(member))
    if not readme_only:
        ship(run_dir, run_dir / sub if sub else run_dir, dest_dir, int(max_bytes), flip, member)
    write_text(dest_dir / "README.md", readme(run_dir, flip, member, dest, max_bytes))


def main(opt: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.chdir(ROOT)  # the defaults, and the paths the README shows, are relative to the repository
    return guarded(lambda: run(**vars(opt)))


if __name__ == "__main__":
    sys.exit(main(parse_opt()))
