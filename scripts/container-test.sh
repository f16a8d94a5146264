#!/usr/bin/env bash
# Real container run of the shipped Dockerfile's runtime stage and the top-level
# docker-compose.yml, on a machine without a Docker engine or a registry:
# podman + runc run the containers, Debian's docker-compose talks to podman's
# Docker-compatible API (see ../shared/containers.md for the recipe).
#
#   bash scripts/container-test.sh
#
# Steps: install podman/runc/docker-compose/busybox-static if missing; write the
# podman configuration this sandbox needs; build miemu statically on the host
# (glibc + crt-static, target dir target/static); pack it into the Dockerfile's
# `runtime` stage through a build context named `build` (which replaces the Rust
# stage: nothing is pulled); `docker-compose config`; start podman's API service;
# `docker-compose up -d`; assert from the containers' own output that `migrate`
# was refused, that `app` got tokens for the system and a user-assigned identity
# over localhost that verify against miemu's JWKS, and that the image's
# HEALTHCHECK command succeeds (`podman healthcheck run`); tear everything down.
#
# Environment:
#   MIEMU_BIN=FILE   use this statically linked miemu instead of building one
#   KEEP_UP=1        leave the compose project running (teardown skipped)
#   MIEMU_COMPOSE_EXTRA=FILE  an extra compose file layered over docker-compose.yml
#                    (for debugging; the run then says it did not test the file alone)
# Exits non-zero on any failure; nothing is skipped silently.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROJECT="${MIEMU_COMPOSE_PROJECT:-miemuctest}"
IMAGE="localhost/miemu:ctest"
WORK="$(mktemp -d /tmp/miemu-ctest.XXXXXX)"
SOCK="$WORK/podman.sock"
PODMAN_PID=""
PASSED=0
FAILED=0
COMPOSE_UP=0
EXTRA_COMPOSE=()
if [ -n "${MIEMU_COMPOSE_EXTRA:-}" ]; then EXTRA_COMPOSE=(-f "$MIEMU_COMPOSE_EXTRA"); fi

log() { printf '== %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$*"; }
die() { printf 'ERROR %s\n' "$*" >&2; FAILED=$((FAILED + 1)); exit 1; }

compose() {
    DOCKER_HOST="unix://$SOCK" MIEMU_IMAGE="$IMAGE" MIEMU_HOST_PORT="$HOST_PORT" \
        COMPOSE_HTTP_TIMEOUT=120 timeout "${COMPOSE_TIMEOUT:-180}" \
        docker-compose --ansi never -p "$PROJECT" -f "$ROOT/docker-compose.yml" "${EXTRA_COMPOSE[@]}" "$@"
}

# podman refuses to remove a container whose network namespace others share,
# and docker-compose 1.29 removes all containers at once: stop everything, remove
# the containers that join miemu's namespace first, then `down -v`.
teardown() {
    COMPOSE_TIMEOUT=120 compose stop --timeout 10 &&
        COMPOSE_TIMEOUT=60 compose rm -f -v app migrate python-app &&
        COMPOSE_TIMEOUT=120 compose down -v --remove-orphans --timeout 10
}

cleanup() {
    local rc=$?
    set +e
    if [ "$COMPOSE_UP" = 1 ]; then
        if [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
            log "logs of the compose project (failure)"
            compose logs --no-color --tail=200 2>&1 | sed 's/^/    /'
        fi
        if [ "${KEEP_UP:-}" = 1 ]; then
            log "KEEP_UP=1: leaving project $PROJECT up (DOCKER_HOST=unix://$SOCK, podman pid $PODMAN_PID)"
            exit "$rc"
        fi
        log "docker-compose down -v"
        teardown >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log"; echo "docker-compose down failed"; rc=1; }
    fi
    if [ -n "$PODMAN_PID" ]; then
        kill "$PODMAN_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$PODMAN_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$PODMAN_PID" 2>/dev/null
        wait "$PODMAN_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
    if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then FAILED=1; fi
    echo "container-test: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ] && [ "$rc" -eq 0 ] || exit 1
    exit 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v docker-compose >/dev/null || need+=(docker-compose)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
    log "apt-get install ${need[*]}"
    timeout 300 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v python3 >/dev/null || die "python3 is needed to verify the tokens"

# ------------------------------------------------------ podman configuration
# Hybrid cgroups need runc + cgroupfs; no overlay here; rlimits cannot be raised.
write_conf() { # path content
    if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
        mkdir -p "$(dirname "$1")"
        [ -f "$1" ] && cp "$1" "$1.bak-miemu"
        printf '%s\n' "$2" >"$1"
        log "wrote $1"
    fi
}
write_conf /etc/containers/containers.conf '[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"'
write_conf /etc/containers/storage.conf '[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"'

# ------------------------------------------------------- static miemu build
if [ -n "${MIEMU_BIN:-}" ]; then
    BIN="$MIEMU_BIN"
    log "using prebuilt MIEMU_BIN=$BIN"
else
    TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
    log "cargo build --release (static glibc, $TRIPLE, target/static)"
    (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_STRIP=symbols \
        timeout 2400 cargo build --release --locked --bin miemu --target "$TRIPLE" --target-dir target/static)
    BIN="$ROOT/target/static/$TRIPLE/release/miemu"
fi
[ -x "$BIN" ] || die "no executable at $BIN"
if ldd "$BIN" 2>&1 | grep -q '=>'; then
    ldd "$BIN"
    die "$BIN is dynamically linked; it cannot run in FROM scratch"
fi
pass "miemu is statically linked ($(ldd "$BIN" 2>&1 | head -1 | sed 's/^[[:space:]]*//'), $(stat -c %s "$BIN") bytes)"

# ------------------------------------------------------ runtime image build
CTX="$WORK/build-context"
mkdir -p "$CTX/out/usr/local/bin" "$CTX/out/var/lib/miemu" "$CTX/out/run/miemu"
cp "$BIN" "$CTX/out/usr/local/bin/miemu"
chmod 0755 "$CTX/out/usr/local/bin/miemu"
log "podman build --target runtime --build-context build=$CTX (the shipped Dockerfile)"
timeout 300 podman build --format docker --pull=never --target runtime \
    --build-context "build=$CTX" -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; die "podman build failed"; }
if grep -q 'rust:' "$WORK/build.log"; then
    cat "$WORK/build.log"; die "the Rust build stage ran although the build context should replace it"
fi
pass "runtime image built from the shipped Dockerfile"

SIZE="$(podman image inspect "$IMAGE" --format '{{.Size}}')"
if [ "$SIZE" -lt $((15 * 1000 * 1000)) ]; then pass "image size $SIZE bytes (< 15 MB)"; else fail "image size $SIZE bytes (>= 15 MB)"; fi
IUSER="$(podman image inspect "$IMAGE" --format '{{.Config.User}}')"
case "$IUSER" in ""|0|0:*|root|root:*) fail "image runs as root ($IUSER)";; *) pass "image user $IUSER (non-root)";; esac
ICMD="$(podman image inspect "$IMAGE" --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}')"
case "$ICMD" in *'"--listen","0.0.0.0:42356"'*) pass "default command listens on 0.0.0.0:42356: $ICMD";; *) fail "default command lacks --listen 0.0.0.0:42356: $ICMD";; esac
IHC="$(podman image inspect "$IMAGE" --format '{{json .Config.Healthcheck}}')"
case "$IHC" in *'"CMD","/usr/local/bin/miemu","healthcheck"'*) pass "HEALTHCHECK (exec form): $IHC";; *) fail "HEALTHCHECK missing or not exec form: $IHC";; esac
IPORTS="$(podman image inspect "$IMAGE" --format '{{json .Config.ExposedPorts}}')"
case "$IPORTS" in *42356/tcp*) pass "EXPOSE 42356";; *) fail "EXPOSE 42356 missing: $IPORTS";; esac

# The identities as the binary itself sees the fixture (ids are derived).
timeout 60 podman run --rm --network none -v "$ROOT/fixtures/compose.toml:/c.toml:ro" "$IMAGE" \
    config --config /c.toml --format json >"$WORK/config.json" 2>"$WORK/config.err" \
    || { cat "$WORK/config.err"; die "miemu config rejected fixtures/compose.toml"; }
TENANT="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tenant_id"])' "$WORK/config.json")"
pass "miemu config accepts fixtures/compose.toml (tenant $TENANT)"

# ------------------------------------------------------------------ compose
HOST_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
compose config -q || die "docker-compose config rejects docker-compose.yml"
pass "docker-compose config accepts docker-compose.yml"

log "podman system service on $SOCK"
podman system service --time=0 "unix://$SOCK" >"$WORK/podman-service.log" 2>&1 &
PODMAN_PID=$!
for _ in $(seq 100); do
    curl -fsS -m 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break
    kill -0 "$PODMAN_PID" 2>/dev/null || { cat "$WORK/podman-service.log"; die "podman system service exited"; }
    sleep 0.2
done
curl -fsS -m 2 --unix-socket "$SOCK" http://d/_ping >/dev/null || die "podman API did not come up"

COMPOSE_UP=1
teardown >/dev/null 2>&1 || true # leftovers of an earlier run with the same project name
if [ "${#EXTRA_COMPOSE[@]}" -gt 0 ]; then
    log "NOTE: $MIEMU_COMPOSE_EXTRA is layered over docker-compose.yml: this run does not test the shipped file alone"
fi
log "docker-compose up -d (miemu, migrate, app)"
compose up -d --no-build >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; die "docker-compose up failed"; }
sed 's/^/    /' "$WORK/up.log"

cid() { compose ps -q "$1" 2>/dev/null | head -1; }
MIEMU_C="$(cid miemu)"; MIGRATE_C="$(cid migrate)"; APP_C="$(cid app)"
[ -n "$MIEMU_C" ] && [ -n "$MIGRATE_C" ] && [ -n "$APP_C" ] || die "containers missing: miemu=$MIEMU_C migrate=$MIGRATE_C app=$APP_C"

# app prints its tokens, then stays up: wait (bounded) for two tokens in its output.
for _ in $(seq 120); do
    podman logs "$APP_C" >"$WORK/app.log" 2>&1 || true
    n="$( { grep -oE 'eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' "$WORK/app.log" || true; } | sort -u | wc -l)"
    [ "$n" -ge 2 ] && break
    [ "$(podman inspect "$APP_C" --format '{{.State.Running}}')" = true ] || break
    sleep 0.5
done
sleep 2 # the app must still be up afterwards
podman logs "$MIEMU_C" >"$WORK/miemu.log" 2>&1 || true
podman logs "$MIGRATE_C" >"$WORK/migrate.log" 2>&1 || true
podman logs "$APP_C" >"$WORK/app.log" 2>&1 || true
for c in miemu migrate app; do
    log "output of $c"
    sed 's/^/    | /' "$WORK/$c.log" | cut -c1-300
done

# migrate: an init container, refused, exit 0
MIG_STATE="$(podman inspect "$MIGRATE_C" --format '{{.State.Status}} {{.State.ExitCode}}')"
[ "$MIG_STATE" = "exited 0" ] && pass "migrate ran to completion with exit 0" || fail "migrate state: $MIG_STATE"
if grep -qi 'init container' "$WORK/migrate.log" && grep -q 'migrate' "$WORK/migrate.log" \
    && ! grep -qE 'eyJ[A-Za-z0-9_-]+\.eyJ' "$WORK/migrate.log"; then
    pass "migrate was refused (its output names the init container, no token): $(grep -i 'init container' "$WORK/migrate.log" | head -1)"
else
    fail "migrate's output does not show the init-container refusal"
fi

# app: started after migrate, shares miemu's network namespace, still running
APP_NET="$(podman inspect "$APP_C" --format '{{.HostConfig.NetworkMode}}')"
case "$APP_NET" in container:"$MIEMU_C"*|container:*) pass "app shares miemu's network namespace ($APP_NET)";; *) fail "app network mode $APP_NET";; esac
[ "$(podman inspect "$APP_C" --format '{{.State.Running}}')" = true ] && pass "app is still running after printing its tokens" \
    || fail "app is not running: $(podman inspect "$APP_C" --format '{{.State.Status}} {{.State.ExitCode}}')"
MIG_END="$(podman inspect "$MIGRATE_C" --format '{{.State.FinishedAt.Unix}}')"
APP_START="$(podman inspect "$APP_C" --format '{{.State.StartedAt.Unix}}')"
[ "$APP_START" -ge "$MIG_END" ] && pass "app started after migrate finished" || fail "app started ($APP_START) before migrate finished ($MIG_END)"

# The endpoint the app was given is localhost, as in Container Apps.
ENV_VOL="$(podman volume inspect "${PROJECT}_miemu-env" --format '{{.Mountpoint}}')"
APP_ENDPOINT="$(sed -n 's/^IDENTITY_ENDPOINT=//p' "$ENV_VOL/app.env" | tr -d '"')"
[ "$APP_ENDPOINT" = "http://localhost:42356/msi/token" ] && pass "app.env: IDENTITY_ENDPOINT=$APP_ENDPOINT" \
    || fail "app.env IDENTITY_ENDPOINT is '$APP_ENDPOINT'"
for k in IDENTITY_HEADER MSI_ENDPOINT MSI_SECRET; do
    grep -q "^$k=." "$ENV_VOL/app.env" || fail "app.env lacks $k"
done

# Tokens: both identities, signatures and claims checked on the host against the JWKS.
PY=python3
VENV_PY="$ROOT/tests/sdk/python/.venv/bin/python"
if [ -x "$VENV_PY" ] && "$VENV_PY" -c 'import jwt, cryptography' 2>/dev/null; then PY="$VENV_PY"; fi
if timeout 60 "$PY" "$ROOT/scripts/verify_tokens.py" --log "$WORK/app.log" \
    --jwks-url "http://127.0.0.1:$HOST_PORT/$TENANT/discovery/keys" \
    --config-json "$WORK/config.json" --audience "https://storage.azure.com/" \
    --identity kind:system --identity storage-reader; then
    pass "app got verifiable tokens for the system identity and storage-reader"
else
    fail "token verification"
fi

# The image's HEALTHCHECK, run by hand (no systemd timers here).
if timeout 30 podman healthcheck run "$MIEMU_C" >"$WORK/hc.log" 2>&1; then HC=0; else HC=$?; fi
[ "$HC" -eq 0 ] && pass "podman healthcheck run miemu: exit 0" || { cat "$WORK/hc.log"; fail "podman healthcheck run miemu: exit $HC"; }
# ... and it does fail when nothing answers (same command, against a dead port).
if timeout 30 podman exec "$MIEMU_C" /usr/local/bin/miemu healthcheck --url http://127.0.0.1:1/healthz >/dev/null 2>&1; then
    fail "miemu healthcheck succeeded against a closed port"
else
    pass "miemu healthcheck fails against a closed port"
fi
