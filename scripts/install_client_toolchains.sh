#!/usr/bin/env bash
# Toolchains for the service clients in clients/ (tests/test_clients.py): libcurl headers + cmake + g++ (C++),
# a JDK 17 (Java), Mono's C# compiler and runtime (C#), Chromium + chromedriver (the browser page).
# Debian/Ubuntu, as root or through sudo; installs only what is missing, so a second run does nothing.
set -euo pipefail
exec bash "$(dirname "$0")/apt_install_missing.sh" \
  libcurl4-openssl-dev cmake g++ openjdk-17-jdk-headless mono-mcs chromium chromium-driver
