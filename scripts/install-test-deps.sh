#!/usr/bin/env bash
# Installs what the hub's tests need beyond Rust: headless Chromium for the dashboard test.
# PostgreSQL is provided by the machine (127.0.0.1:5432, trust auth, database `test`).
# Idempotent and quiet; fast when everything is already there.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_if_needed apt-get update -qq >/dev/null
    sudo_if_needed apt-get install -y -qq chromium >/dev/null
fi
