#!/usr/bin/env bash
# Install the OpenID Connect provider the auth tests start (idempotent).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
    echo "npm is required for tests/servers/oidc_provider" >&2
    exit 1
fi
stamp=node_modules/.restconnect-installed
if [ -f node_modules/oidc-provider/package.json ] && cmp -s package-lock.json "$stamp"; then
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"
