#!/usr/bin/env bash
# Fill .gpu/ (git-ignored via .git/info/exclude) with what a lent GPU machine needs to train students:
#   bash scripts/gpu/prepare.sh device/models/default runs/SOME_RUN   # the teachers
# then, through the device tool: run `bash scripts/gpu/train.sh` with carry [".gpu"] (docs/GPU.md).
# .gpu/data: FER2013 packed to fit the 64 MiB a call may carry (python -m train pack, ~3 min);
# .gpu/whl: Keras 3 and the two wheels it needs that the machine's image lacks (it has JAX);
# .gpu/outside: each teacher outside the repository, at its absolute path (only its model and records);
# .gpu/teacher_probs.npz: the teachers' outputs, made here with LiteRT (python -m train teacher-cache).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data/fer2013/fer2013.csv.gz}
PY=${PY:-.venv/bin/python}
[ $# -ge 1 ] || { echo "error: name at least one teacher (a run folder or a converted model)" >&2; exit 2; }
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
mkdir -p .gpu/whl .gpu/outside
[ -f .gpu/data/faces.xz ] || "$PY" -m train pack "$DATA" .gpu/data
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl "keras==$("$PY" -c 'import keras; print(keras.__version__)')" namex optree
: > .gpu/teachers.txt
for t in "$@"; do
  t=${t%/}
  case "$(realpath "$t")" in "$PWD"/*) ;; *)  # outside the repository: it travels under .gpu/outside
    dest=.gpu/outside$(realpath "$t"); mkdir -p "$dest"
    for f in model.keras config.json metadata.json; do [ -f "$t/$f" ] && cp "$t/$f" "$dest/"; done ;;
  esac
  printf -- '--teacher %s\n' "$t" >> .gpu/teachers.txt
done
"$PY" -m train teacher-cache --data "$DATA" --out .gpu/teacher_probs.npz $(cat .gpu/teachers.txt)
total=$(( $(git ls-files -z | xargs -0 stat -c %s | paste -sd+ | bc) + $(find .gpu -type f -printf '%s\n' | paste -sd+ | bc) ))
echo "a call carrying .gpu sends $total bytes (the limit is $((64 * 1024 * 1024)))"
