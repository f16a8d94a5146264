#!/usr/bin/env bash
# Installs what the Azure SDK conformance suite (tests/sdk) needs, from the lock files:
#   - tests/sdk/python/.venv   from tests/sdk/python/requirements.lock
#   - tests/sdk/js/node_modules via `npm ci` (package-lock.json)
#   - tests/sdk/rust/target    via `cargo build --locked`
# Idempotent: each step is skipped when its lock file has not changed since it last ran.
# Needs only Python >= 3.11, Node.js >= 20 and Rust on PATH; all three folders are git-ignored.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sdk="$root/tests/sdk"
python="${PYTHON:-python3}"

say() { printf 'setup-sdk: %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { say "missing tool: $1 ($2)"; exit 1; }; }

need "$python" "Python 3.11+"
need node "Node.js 20+"
need npm "npm, shipped with Node.js"
need cargo "Rust toolchain"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  say "Node.js 20 or newer is needed (found $(node --version))"
  exit 1
fi

# A stamp holds the hash of the lock file a step was last run for.
stamp_ok() { [ -f "$2" ] && [ "$(cat "$2")" = "$(sha256sum "$1" | cut -d' ' -f1)" ]; }
stamp_write() { sha256sum "$1" | cut -d' ' -f1 > "$2"; }

# Python
venv="$sdk/python/.venv"
lock="$sdk/python/requirements.lock"
if stamp_ok "$lock" "$venv/.miemu-lock-stamp" && [ -x "$venv/bin/python" ]; then
  say "python venv up to date"
else
  say "creating $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  timeout 900 "$venv/bin/python" -m pip install --disable-pip-version-check --quiet --no-deps -r "$lock"
  "$venv/bin/python" -m pip check
  stamp_write "$lock" "$venv/.miemu-lock-stamp"
fi

# JavaScript
js="$sdk/js"
if stamp_ok "$js/package-lock.json" "$js/node_modules/.miemu-lock-stamp"; then
  say "node_modules up to date"
else
  say "npm ci in $js"
  (cd "$js" && timeout 900 npm ci --no-audit --no-fund)
  stamp_write "$js/package-lock.json" "$js/node_modules/.miemu-lock-stamp"
fi

# Rust (cargo decides itself whether anything needs rebuilding)
say "cargo build --locked in $sdk/rust"
(cd "$sdk/rust" && timeout 2400 nice cargo build --locked --quiet)

say "done; run the suite with scripts/sdk-matrix.sh"
