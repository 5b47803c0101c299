#!/usr/bin/env bash
# On a lent GPU machine (after scripts/gpu/prepare.sh, with .gpu carried): students of the teachers in
# .gpu/teachers.txt, one plain `python -m train` process per seed side by side (a 1.2M-parameter CNN on
# 48x48 faces leaves the GPU mostly idle: the processes share it), Keras 3 on JAX, packed into $OUT
# within END_S seconds of the start:
#   SEEDS=21,22,23,24 EPOCHS=150 END_S=560 NAME='vgg_cnn-gpu-s{seed}' bash scripts/gpu/train.sh
# A run still going at the deadline is stopped (SIGTERM; its finished epochs are saved) and packed with its
# checkpoint, to be continued elsewhere with --resume: choose EPOCHS to fit, nothing re-plans them.
# Several seeds are several runs; one run over several GPUs or machines is python -m train --distribute
# data-parallel (docs/TRAINING.md, "Training on several devices or machines").
T0=$(date +%s)
cd "$(dirname "$0")/../.."
FINISH_S=45  # packing after the runs end
DATA=${DATA:-../shared/data/fer2013/fer2013.csv.gz}
RUNS=${RUNS:-runs}
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" || exit 1
python3 -m train unpack .gpu/data "$DATA" || exit 1
cp -r .gpu/outside/. / || exit 1  # the teachers outside the repository, at their own paths
IFS=, read -ra seeds <<< "${SEEDS:-21,22,23,24}"
name=${NAME:-vgg_cnn-gpu-s\{seed\}}
runs=()
for seed in "${seeds[@]}"; do runs+=("$RUNS/${name//\{seed\}/$seed}"); done
python3 -m train stage-teacher-cache .gpu/teacher_probs.npz "${runs[@]}" || exit 1
left=$(( ${END_S:-560} - ($(date +%s) - T0) - FINISH_S ))
echo "setup took $(( $(date +%s) - T0 )) s; training for at most $left s"
for i in "${!seeds[@]}"; do
  out=${runs[$i]} seed=${seeds[$i]}
  # --resume: the folder already holds the staged teacher cache (nothing else is resumed)
  timeout -s TERM "$left" python3 -m train --data "$DATA" --preset shipped $(cat .gpu/teachers.txt) \
    ${TRAIN_ARGS:---erasing 0.5 --precision mixed_bfloat16} --init-seed "$seed" --epochs "${EPOCHS:-150}" \
    --out "$out" --resume >> "$out.log" 2>&1 &
done
wait
mkdir -p "$OUT"
for out in "${runs[@]}"; do
  name=$(basename "$out") skip=(--exclude=teacher_probs.npz)
  [ -f "$out/metrics.json" ] && skip+=(--exclude=checkpoint.keras --exclude=best.keras)  # finished: written last
  tar -cf "$OUT/$name.tar" "${skip[@]}" -C "$(dirname "$out")" "$name" "$name.log"
  echo "$name: $(cat "$out/state.json" 2>/dev/null || echo 'no epoch finished'); packed $OUT/$name.tar"
done
