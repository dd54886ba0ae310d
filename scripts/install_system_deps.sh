#!/usr/bin/env bash
# System tools the synthetic corpus generator (sensevoice/data) needs: espeak-ng (speech), sox and ffmpeg
# (audio conversion). Debian/Ubuntu, as root or through sudo; installs only what is missing.
set -euo pipefail
exec bash "$(dirname "$0")/apt_install_missing.sh" espeak-ng sox ffmpeg
