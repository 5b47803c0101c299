#!/usr/bin/env bash
# Reproduce the results: for each model, train with the paper's recipe (--preset paper), convert to
# int8, bench on a clip, then regenerate docs/RESULTS.md from the run folders.
#
#   scripts/reproduce.sh [FER2013_CSV [CLIP]]
#
# Environment (all optional):
#   MODELS="vanilla_cnn residual_cnn resnet50"  the models, in order (default: all three)
#   EPOCHS=N         epochs per model (default: the paper preset's 60); kept in each config.json
#   SPLIT=random80|official   random80 (default) is the paper's protocol; official reports on PublicTest
#   WEIGHTS=imagenet|none|FILE  resnet50 backbone (default imagenet, a Keras download). none is a random
#                    backbone, NOT the paper's method: its run folder ends in -randinit and every
#                    figure of it is labelled so.
#   RUNS=runs        where the run folders go: RUNS/<model>-paper-<split>[-randinit]
#   RESULTS=docs/RESULTS.md   the generated results file
#   DATA, CLIP       instead of the two arguments (defaults: ../shared/data/fer2013/fer2013.csv.gz,
#                    ../shared/data/faces/fer_test.mp4)
#   PYTHON           the interpreter (default: .venv/bin/python if present, else python3)
#
# Rerun after an interruption and it resumes: training continues from its last finished epoch
# (train --resume); a finished training run is not touched; convert and bench are skipped when
# their outputs are newer than model.keras. Each stage that runs is recorded (date, machine, git
# commit) in RUN/reproduce.json. One model failing does not stop the others; the exit status is 1
# if any failed.
set -uo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD
# Paths given by the caller are relative to where they called from; the defaults to the repository.
from_caller() { case $1 in /*) printf '%s' "$1" ;; *) [ "$caller" = "$root" ] && printf '%s' "$1" || printf '%s' "$caller/$1" ;; esac; }

data=$(from_caller "${1:-${DATA:-}}")
clip=$(from_caller "${2:-${CLIP:-}}")
runs=$(from_caller "${RUNS:-}")
results=$(from_caller "${RESULTS:-}")
[ -n "${1:-${DATA:-}}" ] || data=../shared/data/fer2013/fer2013.csv.gz
[ -n "${2:-${CLIP:-}}" ] || clip=../shared/data/faces/fer_test.mp4
[ -n "${RUNS:-}" ] || runs=runs
[ -n "${RESULTS:-}" ] || results=docs/RESULTS.md
models=${MODELS:-vanilla_cnn residual_cnn resnet50}
split=${SPLIT:-random80}
weights=${WEIGHTS:-imagenet}
case ${weights,,} in imagenet|none) ;; *) weights=$(from_caller "$weights") ;; esac
epochs=${EPOCHS:-}
if [ -n "${PYTHON:-}" ]; then py=$PYTHON
elif [ -x .venv/bin/python ]; then py=.venv/bin/python
else py=python3
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

die() { echo "error: $*" >&2; exit 2; }
[ -e "$data" ] || die "FER2013 data not found: $data (give its path as the first argument or DATA=...)"
[ -f "$clip" ] || die "clip not found: $clip (give it as the second argument or CLIP=...)"
case $split in random80|official) ;; *) die "SPLIT must be random80 or official, got '$split'" ;; esac
if [ -n "$epochs" ]; then
  [[ $epochs =~ ^[0-9]+$ ]] && [ "$epochs" -gt 0 ] || die "EPOCHS must be a positive whole number, got '$epochs'"
else  # the paper preset's epoch count, read from the code rather than repeated here
  epochs=$("$py" -c 'from train.config import PRESETS; print(PRESETS["paper"]["epochs"])') \
    || die "cannot read the paper preset from train/config.py with $py"
fi
for m in $models; do
  case $m in vanilla_cnn|residual_cnn|resnet50) ;; *) die "unknown model '$m' in MODELS (vanilla_cnn residual_cnn resnet50)" ;; esac
done

say() { printf '\n== %s\n' "$*" >&2; }

# record RUN STAGE: merge {date, machine, git, command} for STAGE into RUN/reproduce.json.
record() {
  "$py" - "$1" "$2" "$data" "$clip" "$epochs" "$split" "$weights" "$models" <<'EOF' || echo "warning: could not write $1/reproduce.json" >&2
import datetime, json, os, platform, subprocess, sys
from pathlib import Path
run, stage, data, clip, epochs, split, weights, models = sys.argv[1:]
def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
def git(*a):
    try:
        return subprocess.run(["git", *a], capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""
path = Path(run) / "reproduce.json"
try:
    doc = json.loads(path.read_text())
except Exception:
    doc = {}
doc["format"] = "ferlite-reproduce/1"
commit = git("rev-parse", "HEAD")
doc["git"] = {"commit": commit or None, "dirty": bool(git("status", "--porcelain"))} if commit else None
doc["invocation"] = {"script": "scripts/reproduce.sh", "data": data, "clip": clip, "epochs": int(epochs),
                     "split": split, "weights": weights, "models": models.split()}
doc.setdefault("stages", {})[stage] = {
    "date": datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds"),
    "machine": {"hostname": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
                "cpu": cpu(), "cpu_count": os.cpu_count(), "python": platform.python_version()}}
tmp = path.with_name(".reproduce.json.tmp")
tmp.write_text(json.dumps(doc, indent=2) + "\n")
os.replace(tmp, path)
EOF
}

# train_done RUN [WEIGHTS]: 0 when RUN holds a finished run of exactly $epochs epochs (and, for resnet50,
# these backbone weights), so that train --resume would only re-score it.
train_done() {
  "$py" - "$1" "$epochs" "${2:-}" <<'EOF'
import json, sys
from pathlib import Path
run, epochs, weights = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
try:
    cfg = json.loads((run / "config.json").read_text())
    state = json.loads((run / "state.json").read_text())
except Exception:
    sys.exit(1)
planned = int(cfg.get("epochs", -1)) + int(cfg.get("fine_tune_epochs") or 0)
ok = ((run / "metrics.json").is_file() and (run / "model.keras").is_file() and int(cfg.get("epochs", -1)) == epochs
      and int(state.get("epoch", 0)) >= planned
      and (not weights or str(cfg.get("weights")).lower() == weights.lower()))
sys.exit(0 if ok else 1)
EOF
}

# newer_than_model RUN FILE...: every FILE exists and is newer than RUN/model.keras.
newer_than_model() {
  local run=$1 f
  shift
  for f in "$@"; do
    [ -f "$run/$f" ] && [ "$run/$f" -nt "$run/model.keras" ] || return 1
  done
}

one_model() {
  local model=$1 run wflag=()
  run="$runs/$model-paper-$split"
  if [ "$model" = resnet50 ]; then
    wflag=(--weights "$weights")
    case ${weights,,} in none) run="$run-randinit"
      echo "warning: resnet50 with WEIGHTS=none: a random-init backbone, NOT the paper's method ($run)" >&2 ;;
    esac
  fi
  say "$model -> $run (preset paper, split $split, $epochs epochs${wflag:+, weights $weights})"

  if train_done "$run" "${wflag[1]:-}"; then
    echo "train: $run already finished $epochs epochs; skipped" >&2
  else
    "$py" -m train --data "$data" --model "$model" --preset paper --split "$split" --epochs "$epochs" \
      "${wflag[@]}" --out "$run" --resume || return 1
    record "$run" train
  fi

  if newer_than_model "$run" model_float32.tflite model_int8.tflite eval_faces.npz report.json; then
    echo "convert: $run/report.json is newer than model.keras; skipped" >&2
  else
    "$py" -m convert "$run" --int8 || return 1
    record "$run" convert
  fi

  if newer_than_model "$run" bench.json && [ "$run/bench.json" -nt "$run/model_int8.tflite" ]; then
    echo "bench: $run/bench.json is newer than the models; skipped" >&2
  else
    "$py" device/run.py bench --float "$run/model_float32.tflite" --int8 "$run/model_int8.tflite" \
      --faces "$run/eval_faces.npz" --video "$clip" --threads 1 --json "$run/bench.json" || return 1
    record "$run" bench
  fi
}

failed=()
for model in $models; do
  one_model "$model" || { echo "error: $model failed (see above); going on with the next model" >&2; failed+=("$model"); }
done

say "results -> $results"
"$py" scripts/make_results.py --runs "$runs" --out "$results" || failed+=(make_results)

if [ ${#failed[@]} -gt 0 ]; then
  echo "reproduce: FAILED: ${failed[*]} (rerun to resume)" >&2
  exit 1
fi
echo "reproduce: done ($models; epochs $epochs; split $split) -> $results" >&2
