#!/usr/bin/env bash
# The browser tests drive Debian's chromium with Playwright; install it when it is missing.
set -euo pipefail
browser="${CITYBRAIN_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
  exit 0
fi
echo "chromium not found at $browser; installing Debian's chromium package…" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo="sudo -n"
else
  echo "error: installing chromium needs root (apt-get install chromium), or set CITYBRAIN_CHROMIUM" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
[ -x "$browser" ] || { echo "error: chromium still missing at $browser" >&2; exit 1; }
