#!/usr/bin/env bash
# The main job, from a fresh clone: set up .venv, train on FER2013, convert to float32 + int8
# TFLite, then bench int8 against float32 and run the device loop on a clip.
#
#   scripts/main.sh [FER2013_CSV] [CLIP]
#   PRESET=shipped|baseline|paper  MODEL=NAME (default: the preset's; train/registry.py lists them)
#   EPOCHS=N  RUN=runs/NAME
#
# PRESET defaults to shipped, the recipe of the shipped default model (train/config.py PRESETS); baseline
# is a quick vanilla_cnn (minutes, not hours, on a CPU).
#
# FER2013_CSV defaults to ../shared/data/fer2013/fer2013.csv.gz (our copy; get yours from
# Kaggle's "Challenges in Representation Learning: Facial Expression Recognition").
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/fer2013/fer2013.csv.gz}
clip=${2:-../shared/data/faces/fer_test.mp4}
preset=${PRESET:-shipped}
run=${RUN:-runs/$preset${MODEL:+-$MODEL}}
# --model only when asked for, so PRESET=shipped keeps the preset's own model (vgg_cnn).
model_flag=()
[ -n "${MODEL:-}" ] && model_flag=(--model "$MODEL")
epochs_flag=()
[ -n "${EPOCHS:-}" ] && epochs_flag=(--epochs "$EPOCHS")
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

scripts/setup_venv.sh .venv train,dev
py=.venv/bin/python
# --resume: rerunning the script after an interruption continues the run.
$py -m train --data "$data" --preset "$preset" "${model_flag[@]}" --out "$run" --resume "${epochs_flag[@]}"
$py -m convert "$run" --int8
$py device/run.py bench --float "$run/model_float32.tflite" --int8 "$run/model_int8.tflite" \
    --faces "$run/eval_faces.npz" --video "$clip" --threads 1 --json "$run/bench.json"
$py device/run.py --source "$clip" --model "$run/model_int8.tflite" --log "$run/clip.jsonl"
echo "done: $run (metrics.json, report.md, bench.json, clip.jsonl)"
