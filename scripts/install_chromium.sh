#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/ui). Idempotent; never lets a browser
# download itself (no `playwright install`): Playwright drives /usr/bin/chromium.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && chromium --version >/dev/null 2>&1; then
    echo "chromium present: $(chromium --version)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "install_chromium.sh: need root (or sudo) to apt-get install chromium" >&2; exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when chromium is unknown to apt (fresh containers have none).
if ! apt-cache show chromium >/dev/null 2>&1; then
    $SUDO apt-get update -qq
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation
fi
echo "chromium installed: $(chromium --version)"
