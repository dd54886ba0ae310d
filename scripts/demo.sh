#!/usr/bin/env bash
# README command 1: set up .venv (pinned), then transcribe the bundled example clips with the embedded demo model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m sensevoice.demo "$@"
