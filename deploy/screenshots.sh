#!/usr/bin/env bash
# What participants see, in a real web client (run on demand; not part of the tests):
# Converse.js from the npm registry, in Debian's headless Chromium, against the quick
# start's Prosody over WebSocket. Writes deploy/screenshots/room.png and private-link.png.
#
#   bash deploy/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v prosody >/dev/null || need+=(prosody)
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! .venv/bin/python -c pass 2>/dev/null; then
  python3 -m venv .venv
fi
.venv/bin/python -c 'import bot, playwright' 2>/dev/null \
  || .venv/bin/pip install -q -e '.[screenshots]'
exec .venv/bin/python -m deploy.screenshots "$@"
