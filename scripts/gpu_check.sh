#!/usr/bin/env bash
# The GPU check (issue #35) in one command: `python -m sensevoice.bench.gpu` with everything it needs.
#
# On the lent GPU machine (Python 3.12 with PyTorch, no package registry), from the repository root, after
# `bash scripts/pack_for_gpu.sh check` made .gpupack/ here and the device tool carried it:
#     bash scripts/gpu_check.sh "$OUT"
# The rehearsal, on any machine with the project's venv (tiny weights, small sizes, about 3 minutes):
#     PY=.venv/bin/python bash scripts/gpu_check.sh /tmp/check --device cpu --quick
#
# Where FunASR is not installed, .gpupack/wheels is installed with --no-deps into /tmp/gpu_site (the machine
# has torch, numpy, onnxruntime, httpx and most of the rest); .gpupack/official (the official tokenizer, am.mvn and
# example speech, never committed) becomes $SENSEVOICE_OFFICIAL_DIR. Everything lands in OUT/gpu_check:
# results.md, results.json, env.txt, logs/run.log (this script's output) and logs/items.tar (every process's log):
# five files, within the eight the device machine sends back. Options after OUT go to sensevoice.bench.gpu
# (--budget-s, --backends, --size, ...); its exit code is this script's.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu_check.sh OUT_DIR [python -m sensevoice.bench.gpu options]}
shift
py=${PY:-python3}
pack=.gpupack
dest=$out/gpu_check
mkdir -p "$dest/logs"
log=$dest/logs/run.log
: > "$log"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if ! "$py" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("funasr") is None)'; then
  if ! ls "$pack"/wheels/*.whl > /dev/null 2>&1; then
    echo "FunASR is not installed for $py and $pack/wheels is absent: run 'bash scripts/pack_for_gpu.sh check'" \
         "where pip works, and carry $pack" | tee -a "$log"
    exit 2
  fi
  start=$(date +%s)
  if ! "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_site \
        "$pack"/wheels/*.whl >> "$log" 2>&1; then
    echo "installing $pack/wheels failed:" && tail -5 "$log"
    exit 2
  fi
  export PYTHONPATH=/tmp/gpu_site:$PYTHONPATH
  echo "installed $(ls "$pack"/wheels/*.whl | wc -l) wheels from $pack/wheels in $(( $(date +%s) - start )) s" \
    | tee -a "$log"
fi
if [ -d "$pack/official/SenseVoiceSmall" ]; then
  export SENSEVOICE_OFFICIAL_DIR=$PWD/$pack/official
fi
PYTHONUNBUFFERED=1 "$py" -m sensevoice.bench.gpu --out "$dest" "$@" 2>&1 | tee -a "$log"
