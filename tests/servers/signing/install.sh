#!/usr/bin/env bash
# What the signing and transport auth tests need beyond the [test] extra
# (trustme, moto[server], boto3, botocore, httpbin, stripe, slack_sdk):
# the openssl command, the independent reference for Shopify's webhook HMAC.
# Idempotent; the tests skip that one check when openssl is absent.
set -euo pipefail
if command -v openssl >/dev/null 2>&1; then
    echo "openssl: $(openssl version)"
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq openssl
else
    echo "openssl is missing; install it to run the Shopify webhook check" >&2
fi
