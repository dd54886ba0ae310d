#!/usr/bin/env bash
# Toolchains for the service clients in clients/ (tests/test_clients.py): libcurl headers + cmake + g++ (C++),
# a JDK 17 (Java), Mono's C# compiler and runtime (C#), Chromium + chromedriver (the browser page).
# Debian/Ubuntu, as root or through sudo; installs only what is missing, so a second run does nothing.
set -euo pipefail
packages=(libcurl4-openssl-dev cmake g++ openjdk-17-jdk-headless mono-mcs chromium chromium-driver)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "client toolchains present: ${packages[*]}"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "installing: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO nice -n 10 apt-get install -y -q --no-install-recommends "${missing[@]}"
