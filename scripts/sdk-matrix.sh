#!/usr/bin/env bash
# Runs the Azure SDK conformance suite (tests/sdk) against a miemu binary and, when the
# whole matrix passes, rewrites tests/sdk/compat.md (library, exact version, flows verified,
# each library's error text per failure flow).
#
#   scripts/sdk-matrix.sh [pytest args...]
#
# MIEMU_BIN selects the binary (default: target/debug/miemu). Run scripts/setup-sdk.sh first;
# the suite fails, naming that script, when the venv, node_modules or the Rust client is missing.
# With --check, compat.md is not rewritten: the run fails if the committed table differs.
# With --netns (root, util-linux unshare), the suite runs in a fresh network namespace that
# has nothing but loopback, so any request that would leave 127.0.0.0/8 fails outright.
set -euo pipefail

for a in "$@"; do
  if [ "$a" = "--netns" ] && [ -z "${MIEMU_SDK_IN_NETNS:-}" ]; then
    rest=()
    for b in "$@"; do [ "$b" = "--netns" ] || rest+=("$b"); done
    export MIEMU_SDK_IN_NETNS=1
    exec unshare --net -- bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "${rest[@]}"
  fi
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sdk="$root/tests/sdk"
py="$sdk/python/.venv/bin/python"
export MIEMU_BIN="${MIEMU_BIN:-$root/target/debug/miemu}"

if [ ! -x "$py" ]; then
  echo "sdk-matrix: $py is missing; run scripts/setup-sdk.sh" >&2
  exit 1
fi

check=0
args=()
for a in "$@"; do
  if [ "$a" = "--check" ]; then check=1; else args+=("$a"); fi
done

if [ "$check" = 1 ]; then
  before="$(mktemp)"
  cp "$sdk/compat.md" "$before" 2>/dev/null || : > "$before"
fi

cd "$sdk"
status=0
timeout 1200 "$py" -m pytest "${args[@]}" || status=$?

if [ "$check" = 1 ]; then
  if ! diff -u "$before" "$sdk/compat.md"; then
    cp "$before" "$sdk/compat.md"
    echo "sdk-matrix: tests/sdk/compat.md is out of date; rerun scripts/sdk-matrix.sh and commit it" >&2
    status=1
  fi
  rm -f "$before"
fi
exit "$status"
