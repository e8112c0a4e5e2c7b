#!/usr/bin/env bash
# Install every third-party server and tool the test suite starts: the
# OpenID Connect provider (npm), Chromium and JupyterLab for the browser test
# (Debian and PyPI). Each step is idempotent; run it from the repository root
# with the test virtualenv's python on PATH or as $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

# The OpenID Connect provider runs on Node.js (20.19 or newer).
if ! command -v npm >/dev/null 2>&1; then
    echo "== installing Node.js and npm from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm
fi
for script in tests/servers/*/install.sh tests/browser/install.sh; do
    if [ -f "$script" ]; then
        echo "== $script"
        bash "$script"
    fi
done
