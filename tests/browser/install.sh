#!/usr/bin/env bash
# Install what the JupyterLab browser test needs: Debian's chromium, and
# playwright + jupyterlab in the project's Python environment.
# Idempotent: each step is skipped when its result is already there.
# Playwright's own browser download is never used; the test points
# Playwright at /usr/bin/chromium.
#
# Usage: tests/browser/install.sh [PYTHON]   (default: python3 on PATH)
set -euo pipefail

PYTHON="${1:-${PYTHON:-python3}}"

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if ! "$PYTHON" -c "import playwright, jupyterlab" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet "playwright>=1.40" "jupyterlab>=4.1,<5"
fi

chromium --version
"$PYTHON" -c "import playwright, jupyterlab; print('jupyterlab', jupyterlab.__version__)"
