#!/usr/bin/env bash
# Packages the AgentOrch@1 task as a .vsix for the Visual Studio Marketplace or Azure DevOps
# Server.
#
#   scripts/package-vsix.sh [--binary PATH] [--out DIR] [--version X.Y.Z]
#   scripts/package-vsix.sh --install-tools    # only install tfx-cli (scripts/test does)
#
# Without --binary, builds release binaries: linux-x64 always, windows-x64 too when the
# x86_64-pc-windows-gnu target and the mingw-w64 linker are installed. With --binary, stages
# PATH as the linux-x64 binary and builds nothing (the tests pass the debug build).
#
# Stages OUT/vss-extension.json, OUT/overview.md and OUT/task/ (task.json, the Node shim,
# bin/<platform>/agent-orch[.exe]), runs `tfx extension create`, checks the size limit, and
# prints the .vsix path. OUT defaults to dist/. tfx-cli is installed into .tools/ on first use.
set -euo pipefail

# Azure DevOps Server rejects a larger extension.
readonly MAX_VSIX_BYTES=$((25 * 1024 * 1024))
readonly TFX_VERSION=0.23.1

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$repo/dist"
binary=""
version=""
tools_only=false

die() {
  echo "error: $*" >&2
  exit 1
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --version) version="${2:?--version needs X.Y.Z}"; shift 2 ;;
    --install-tools) tools_only=true; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) die "unknown argument \`$1\` (see --help)" ;;
  esac
done

tfx="$repo/.tools/node_modules/.bin/tfx"
# tfx-cli into .tools/ on first use.
install_tfx() {
  mkdir -p "$repo/.tools"
  # One install at a time: tests package in parallel.
  exec 9>"$repo/.tools/install.lock"
  flock 9
  if [[ ! -x "$tfx" ]]; then
    npm install --prefix "$repo/.tools" --no-audit --no-fund --loglevel=error "tfx-cli@$TFX_VERSION" >&2
  fi
  flock --unlock 9
}
if $tools_only; then
  install_tfx
  exit 0
fi

if [[ -n "$version" && ! "$version" =~ ^1\.[0-9]+\.[0-9]+$ ]]; then
  die "version \`$version\` must be 1.MINOR.PATCH: the task's major version is 1"
fi

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
windows_binary=""
if [[ -z "$binary" ]]; then
  (cd "$repo" && cargo build --release --locked --bin agent-orch)
  binary="$target_dir/release/agent-orch"
  if rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu &&
    command -v x86_64-w64-mingw32-gcc >/dev/null; then
    (cd "$repo" && CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
      cargo build --release --locked --bin agent-orch --target x86_64-pc-windows-gnu)
    windows_binary="$target_dir/x86_64-pc-windows-gnu/release/agent-orch.exe"
  else
    echo "note: packaging linux-x64 only (needs \`rustup target add x86_64-pc-windows-gnu\`" \
      "and the gcc-mingw-w64-x86-64 package for windows-x64)" >&2
  fi
fi
[[ -f "$binary" ]] || die "no binary at \`$binary\`"

# Stage.
task="$out/task"
rm -rf "$task"
mkdir -p "$task/bin/linux-x64"
cp "$repo/task.json" "$repo/ado-task/index.js" "$repo/ado-task/package.json" "$task/"
cp "$repo/vss-extension.json" "$repo/ado-task/overview.md" "$out/"
cp "$binary" "$task/bin/linux-x64/agent-orch"
# Debug info is no use on an agent and counts against the size limit.
if command -v strip >/dev/null; then
  strip "$task/bin/linux-x64/agent-orch"
fi
chmod 755 "$task/bin/linux-x64/agent-orch"
if [[ -n "$windows_binary" ]]; then
  mkdir -p "$task/bin/win32-x64"
  cp "$windows_binary" "$task/bin/win32-x64/agent-orch.exe"
fi

if [[ -n "$version" ]]; then
  # The agent downloads a task again only when task.json's version changes.
  VERSION="$version" node -e '
    const fs = require("fs");
    const [major, minor, patch] = process.env.VERSION.split(".").map(Number);
    for (const file of process.argv.slice(1)) {
      const manifest = JSON.parse(fs.readFileSync(file, "utf8"));
      if (manifest.manifestVersion) manifest.version = process.env.VERSION;
      else manifest.version = { Major: major, Minor: minor, Patch: patch };
      fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n");
    }' "$out/vss-extension.json" "$task/task.json"
fi

# Package.
install_tfx
extension_version="$(node -p 'require(process.argv[1]).version' "$out/vss-extension.json")"
vsix="$out/agent-orch-$extension_version.vsix"
rm -f "$vsix"
"$tfx" extension create --root "$out" --manifest-globs vss-extension.json \
  --output-path "$vsix" --no-prompt --no-color >&2

size="$(stat -c %s "$vsix")"
if ((size > MAX_VSIX_BYTES)); then
  die "\`$vsix\` is $size bytes, over the $MAX_VSIX_BYTES-byte limit of Azure DevOps Server"
fi
echo "$vsix"
