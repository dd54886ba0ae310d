#!/usr/bin/env bash
# System tools the synthetic corpus generator (sensevoice/data) needs: espeak-ng (speech), sox and ffmpeg
# (audio conversion); Festival, Flite and Open JTalk (sensevoice/training/data/engines.py: a second English engine
# for training, held-out engines for the cross-engine test split), fortunes and Japanese manual pages (text sources of
# sensevoice/training/data/opentext.py). Debian/Ubuntu, as root or through sudo; installs only what is missing.
set -euo pipefail
exec bash "$(dirname "$0")/apt_install_missing.sh" espeak-ng sox ffmpeg \
    festival festvox-kallpc16k festvox-kdlpc16k flite open-jtalk open-jtalk-mecab-naist-jdic \
    fortunes fortunes-min manpages-ja
