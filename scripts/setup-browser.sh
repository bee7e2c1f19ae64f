#!/usr/bin/env bash
# What the dashboard's browser test needs (host/tests/it/dashboard.rs):
# Debian's Chromium, and Playwright's driver (playwright-core, no browser
# download) from tests/browser/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
fi
npm ci --prefix tests/browser --no-audit --no-fund --silent
echo "setup-browser: $(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p "require('./tests/browser/node_modules/playwright-core/package.json').version")"
