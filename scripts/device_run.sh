#!/usr/bin/env bash
# On a lent GPU machine (after scripts/device_prepare.sh, with .gpu carried): students of the teachers
# in .gpu/teachers.txt, SEEDS side by side, Keras 3 on JAX, packed into $OUT within END_S seconds.
#   SEEDS=21,22,23,24 EPOCHS=150 END_S=560 NAME='vgg_cnn-gpu-s{seed}' bash scripts/device_run.sh
T0=$(date +%s)
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" || exit 1
python3 scripts/fer2013_pack.py unpack .gpu/data ${DATA:-../shared/data/fer2013/fer2013.csv.gz} || exit 1
cp -r .gpu/root/. / || exit 1
BUDGET=$(( ${END_S:-560} - ($(date +%s) - T0) ))
echo "setup took $(( $(date +%s) - T0 )) s; training budget $BUDGET s"
python3 scripts/device_train.py --budget $BUDGET --seeds ${SEEDS:-21,22,23,24} --epochs ${EPOCHS:-150} \
  --runs ${RUNS:-/root/ferlite-runs} --name "${NAME:-vgg_cnn-gpu-s{seed}}" --teacher-cache .gpu/teacher_probs.npz \
  --pack $OUT -- --data ${DATA:-../shared/data/fer2013/fer2013.csv.gz} --preset best $(cat .gpu/teachers.txt) \
  ${TRAIN_ARGS:---erasing 0.5 --precision mixed_bfloat16}
