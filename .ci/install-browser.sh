#!/usr/bin/env bash
# Debian's Chromium for the headless browser test of the app (tests/test_app.py drives it with Playwright
# for Python at /usr/bin/chromium; never `playwright install`, which downloads a browser build of its own).
# Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo sudo)
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y --no-install-recommends chromium
