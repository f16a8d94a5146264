#!/usr/bin/env bash
# A failed key write must leave the old key intact and serving. Simulates a
# full disk: the key directory lives on a tiny tmpfs that is then filled, and a
# rotation is asked for through the admin API. Needs root (mount); fails, never
# skips, without it.
#
#   bash scripts/key-failure-test.sh        (MIEMU_BIN defaults to target/debug/miemu)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${MIEMU_BIN:-$root/target/debug/miemu}"
[ -x "$bin" ] || { echo "key-failure-test: $bin is missing (cargo build)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "key-failure-test: needs root to mount a tmpfs"; exit 1; }

work="$(mktemp -d /tmp/miemu-keyfail.XXXXXX)"
keys="$work/keys"
mkdir -p "$keys"
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    umount "$keys" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mount -t tmpfs -o size=64k tmpfs "$keys"

passed=0; failed=0
check() { if eval "$2"; then passed=$((passed+1)); echo "PASS $1"; else failed=$((failed+1)); echo "FAIL $1"; fi; }

admin_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
token=keyfail-admin-token-0123
"$bin" serve --listen 127.0.0.1:0 --key-dir "$keys" --env-dir "$work/env" \
    --admin-listen "127.0.0.1:$admin_port" --admin-token "$token" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do [ -f "$work/env/app.env" ] && break; sleep 0.05; done
. "$work/env/app.env"
base="${IDENTITY_ENDPOINT%/msi/token}"
kid_before=$(cat "$keys/current")

# Fill the file system.
dd if=/dev/zero of="$keys/filler" bs=1k count=1024 2>/dev/null || true

code=$(curl -s -o "$work/rotate.json" -w '%{http_code}' -X POST "http://127.0.0.1:$admin_port/keys/rotate" -H "Authorization: Bearer $token")
check "rotation on a full disk answers 500" '[ "$code" = 500 ]'
check "the error says the current key keeps signing" 'grep -q "the current key keeps signing" "$work/rotate.json"'
check "current still names the old key" '[ "$(cat "$keys/current")" = "$kid_before" ]'
check "no half-written key directory is left" '! ls -A "$keys" | grep -q "^\.new-"'

resp=$(curl -s "$IDENTITY_ENDPOINT?api-version=2019-08-01&resource=api%3A%2F%2Fkeyfail" -H "X-IDENTITY-HEADER: $IDENTITY_HEADER")
kid_used=$(python3 -c 'import sys,json,base64;t=json.loads(sys.argv[1])["access_token"].split(".")[0];print(json.loads(base64.urlsafe_b64decode(t+"=="))["kid"])' "$resp")
check "tokens are still signed by the old key" '[ "$kid_used" = "$kid_before" ]'
check "the JWKS still publishes the old key" 'curl -s "$base/common/discovery/keys" | grep -qF -e "$kid_before"'

kill "$pid"; wait "$pid" || true; pid=""
rm -f "$keys/filler"
"$bin" serve --listen 127.0.0.1:0 --key-dir "$keys" >"$work/out2" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "signing key" "$work/out2" 2>/dev/null && break; sleep 0.05; done
check "a restart loads the old key" 'grep -q "kid $kid_before (loaded from" "$work/out2"'

echo "key-failure-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
