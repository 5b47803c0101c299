#!/usr/bin/env bash
# Make the shipped default model (device/models/default/) from a finished training run.
#
#   scripts/make_default_model.sh [RUN]          RUN defaults to runs/vanilla_cnn-official
#   DEST=DIR  MAX_BYTES=N  PYTHON=...            (defaults: device/models/default, 2000000, .venv/bin/python)
#   FLIP_TTA=1                                   ship RUN/flip-tta (python -m convert RUN --int8 --flip-tta):
#                                                the model averaged with its mirror image inside the file
#
# Converts RUN (python -m convert RUN --int8) unless its report.json and .tflite files are newer
# than model.keras, refuses an int8 model over MAX_BYTES (2 MB), then copies into DEST:
# model_int8.tflite, metadata.json, report.md, model_float32.tflite only if it is within MAX_BYTES
# too, and writes DEST/README.md (where the model came from, its accuracy, how to remake it).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD
from_caller() { case $1 in /*) printf '%s' "$1" ;; *) [ "$caller" = "$root" ] && printf '%s' "$1" || printf '%s' "$caller/$1" ;; esac; }

run=runs/vanilla_cnn-official
[ -n "${1:-}" ] && run=$(from_caller "$1")
dest=device/models/default
[ -n "${DEST:-}" ] && dest=$(from_caller "$DEST")
max=${MAX_BYTES:-2000000}
flip=${FLIP_TTA:-0}
case $flip in 0|1) ;; *) echo "error: FLIP_TTA must be 0 or 1, got '$flip'" >&2; exit 1 ;; esac
if [ -n "${PYTHON:-}" ]; then py=$PYTHON
elif [ -x .venv/bin/python ]; then py=.venv/bin/python
else py=python3
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
die() { echo "error: $*" >&2; exit 1; }

[ -d "$run" ] || die "run folder not found: $run"
[ -f "$run/metrics.json" ] && [ -f "$run/model.keras" ] \
  || die "$run has not finished training (no metrics.json / model.keras yet): nothing to ship"

src=$run flags=(--int8)  # src: the folder the shipped files come from
if [ "$flip" = 1 ]; then src=$run/flip-tta flags=(--int8 --flip-tta); fi
fresh=1
for f in model_int8.tflite model_float32.tflite report.json report.md metadata.json; do
  [ -f "$src/$f" ] && [ "$src/$f" -nt "$run/model.keras" ] || fresh=0
done
# fresh only when the report is of the kind we ship: int8 in it, and flip-averaged exactly when FLIP_TTA=1
if [ $fresh = 1 ] && "$py" -c 'import json,sys; r = json.load(open(sys.argv[1]))
sys.exit(0 if "int8" in r["models"] and bool(r.get("run", {}).get("flip_tta")) == (sys.argv[2] == "1") else 1)' \
    "$src/report.json" "$flip"; then
  echo "convert: $src is already converted (report.json newer than model.keras)" >&2
else
  echo "convert: python -m convert $run ${flags[*]}" >&2
  "$py" -m convert "$run" "${flags[@]}"
fi

bytes() { wc -c < "$1" | tr -d ' '; }
int8_size=$(bytes "$src/model_int8.tflite")
[ "$int8_size" -le "$max" ] || die "$src/model_int8.tflite is $int8_size bytes, over the $max-byte limit for the shipped model"

mkdir -p "$dest"
copy() {  # copy SRC into DEST atomically (a reader never sees half a file)
  cp "$1" "$dest/.$(basename "$1").tmp" && mv -f "$dest/.$(basename "$1").tmp" "$dest/$(basename "$1")"
}
copy "$src/model_int8.tflite"
copy "$src/metadata.json"
copy "$src/report.md"
f32_size=$(bytes "$src/model_float32.tflite")
if [ "$f32_size" -le "$max" ]; then
  copy "$src/model_float32.tflite"
  f32_note="copied ($f32_size bytes)"
else
  rm -f "$dest/model_float32.tflite"  # never leave a float32 model from another run beside this int8 one
  f32_note="not copied: $f32_size bytes, over the $max-byte limit (it stays in $src)"
fi

"$py" - "$run" "$dest" "$f32_note" "$max" "$flip" <<'EOF'
import json, os, sys
from pathlib import Path
run, dest, f32_note, max_bytes, flip = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
sys.path.insert(0, "scripts")
import make_results as mr

r = mr.load_run(run)
cfg, meta, rep = r.cfg, r.metadata or {}, r.report or {}
if flip:  # the shipped files are RUN/flip-tta's: its report, the same training run
    rep = json.loads((run / mr.FLIP_DIR / "report.json").read_text())
data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
models = rep.get("models", {})
i8, f32, k = models.get("int8", {}), models.get("float32", {}), models.get("keras", {})
ev = rep.get("evaluation", {})
split = ev.get("split", "?")
train_cmd, notes = mr.train_command(cfg, mr.shown_path(run)) if cfg else ("# not recorded (no config.json)", [])
is_publictest = split == "PublicTest"
lines = [
    "# The default model",
    "",
    "`device/run.py` uses `model_int8.tflite` from this folder when no `--model` is given. Made by "
    "`scripts/make_default_model.sh`; do not edit by hand.",
    "",
    f"- From run folder: `{mr.shown_path(run)}` ({meta.get('model', cfg.get('model', '?'))}, "
    f"{meta.get('params', 0):,} parameters)"
    + (", converted with `--flip-tta`: the file classifies each face and its mirror image and averages the "
       "two probability vectors (twice the model time; the device runtime needs nothing extra)" if flip else ""),
    f"- Config: preset `{cfg.get('preset')}`, split `{cfg.get('split')}`"
    + (f", subsampled with --limit {cfg['limit']}" if cfg.get("limit") else "")
    + f", epochs run {r.metrics.get('epochs_run', '?')} of "
    f"{mr.epochs_planned(r) if cfg else '?'} planned (best validation accuracy {mr.pct(r.metrics.get('best_val_accuracy'))} "
    f"at epoch {r.metrics.get('best_epoch', '?')}), batch {cfg.get('batch_size')}, Adam lr {cfg.get('lr')} "
    f"({cfg.get('lr_schedule')}), class weights `{cfg.get('class_weights')}`, seed {cfg.get('seed')}"
    + (f", backbone weights: {mr.weights_label(cfg.get('weights'))}" if cfg.get("model") == "resnet50" else ""),
    f"- Data: `{data.get('path', cfg.get('data', '?'))}`, sha256 `{data.get('sha256', '?')}`",
    f"- {'PublicTest' if is_publictest else 'Evaluation (' + split + ')'} accuracy of the int8 model: "
    f"**{mr.pct(i8.get('accuracy'), 2)}** (macro-F1 {mr.pct(i8.get('macro_f1'), 2)}) on {ev.get('n', '?')} faces; "
    f"float32 {mr.pct(f32.get('accuracy'), 2)}, Keras {mr.pct(k.get('accuracy'), 2)}; int8 drop vs float32 "
    f"{mr.pp((i8.get('drop_vs_float32') or {}).get('accuracy_pp'))}"
    + ("" if is_publictest else f" (not PublicTest: this run's evaluation split is {split})"),
    f"- Converted {rep.get('date', '?')} on {mr.machine_text(rep.get('machine'))}",
    "",
    "Files:",
    "",
    f"- `model_int8.tflite`: {mr.size(i8.get('size_bytes'))}, int8 in and out",
    f"- `model_float32.tflite`: {f32_note}",
    "- `metadata.json`: labels, input contract, data and split of the run",
    "- `report.md`: the conversion report (its confusion-matrix images stay in the run folder)",
    "",
    "Remake it (from the repository root):",
    "",
    "```bash",
    train_cmd,
    *[f"# note: {n}" for n in notes],
    ("FLIP_TTA=1 " if flip else "") + f"scripts/make_default_model.sh {mr.shown_path(run)}   # converts "
    f"(python -m convert RUN --int8{' --flip-tta' if flip else ''}) if needed, then copies",
    "```",
    "",
]
tmp = dest / ".README.md.tmp"
tmp.write_text("\n".join(lines), encoding="utf-8")
os.replace(tmp, dest / "README.md")
EOF
echo "default model: $dest (from $run; int8 $int8_size bytes; float32 $f32_note)" >&2
