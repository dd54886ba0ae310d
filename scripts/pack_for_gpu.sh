#!/usr/bin/env bash
# .devpack/ (git-ignored): what recipes/demo/open_vocab.sh needs on a GPU machine that has Python 3.12 and PyTorch
# but no package registry and no espeak-ng (such as this workplace's lent H200):
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
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
pack=.devpack
init=${INIT:-exp/open_vocab_init}
rm -rf "$pack"
mkdir -p "$pack/espeak/bin" "$pack/espeak/libexec" "$pack/espeak/lib" "$pack/espeak/espeak-ng-data" "$pack/cache" \
         "$pack/wheels" "$pack/init"

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

pins=$($py -m pip freeze | grep -iE '^(funasr|soundfile|cffi|pycparser|faker|librosa|audioread|decorator|pooch|platformdirs|soxr)==')
$py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$pack/wheels" $pins

cp "$init/sensevoice.bpe.model" "$init/am.mvn" "$pack/init/"
du -sh "$pack"/*
