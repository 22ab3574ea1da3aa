#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, then checks what it cannot install.
#   - Debian packages: chromium (the dashboard test), nodejs and npm (the Azure DevOps task
#     shim and its packaging), python3 (the demo's sample app), git (the worker's repository);
#     the same list as tests/integration/support/tools.rs, which names them when one is missing.
#   - tfx-cli, from the npm registry into .tools/ (what scripts/package-vsix.sh runs).
#   - PostgreSQL is the machine's: 127.0.0.1:5432, trust auth, database `test`
#     (or AGENT_ORCH_TEST_POSTGRES); only checked, with what to do when it does not answer.
# Idempotent and quiet; fast when everything is already there. Run by scripts/test.
set -euo pipefail
cd "$(dirname "$0")/.."

# program:package, as in tests/integration/support/tools.rs.
tools=(chromium:chromium node:nodejs npm:npm python3:python3 git:git)

missing=()
for tool in "${tools[@]}"; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if ((${#missing[@]} > 0)); then
    echo "installing ${missing[*]} (apt-get)" >&2
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq >/dev/null
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash scripts/package-vsix.sh --install-tools

# Host and port only: the URL may carry a password.
address=$(node -p 'const url = new URL(process.argv[1]); `${url.hostname}:${url.port || 5432}`' \
    "${AGENT_ORCH_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}")
if ! timeout 3 bash -c ": </dev/tcp/${address%:*}/${address##*:}" 2>/dev/null; then
    cat >&2 <<MSG
error: PostgreSQL does not answer at $address; the hub's store tests need it.
  Install and start it with trust auth for local connections and a database \`test\`
  (\`sudo apt-get install postgresql\`, then in pg_hba.conf \`host all all 127.0.0.1/32 trust\`,
  \`createdb -U postgres test\`), or set AGENT_ORCH_TEST_POSTGRES to the URL of a database
  where you may create schemas.
MSG
    exit 1
fi
