#!/usr/bin/env bash
# Bounded loopback load test of miemu (issue 7), in two phases:
#
#   1. load:    CONNS concurrent keep-alive connections send REQUESTS requests
#               mixed across the containers and identities of
#               tools/loadgen/load.toml (75 % well-formed, 25 % deliberately
#               wrong); every answer is checked (status, error message, and
#               for tokens the client_id, resource and a JWKS-verified
#               signature), and miemu's RSS, descriptors and threads are
#               sampled from /proc.
#   2. sigterm: a fresh miemu under the same kind of load gets SIGTERM after
#               half of SIGTERM_REQUESTS answers; every request written
#               before the signal must get its full answer, no client may
#               see a reset, and miemu must exit 0 within MIEMU_EXIT_SECS.
#
# Sizes: CI   CONNS=500   REQUESTS=50000   (the defaults)
#        full CONNS=10000 REQUESTS=1000000
# Other knobs: SIGTERM_CONNS (CONNS), SIGTERM_REQUESTS (REQUESTS/5, at least
# 10000), MAX_SECS (900, per phase), MIEMU_LOG (RUST_LOG for miemu, default
# miemu=warn: a million info lines would measure the disk), PHASES
# ("load sigterm"), RESULTS_DIR (target/load-test). Network traffic stays on
# 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONNS=${CONNS:-500}
REQUESTS=${REQUESTS:-50000}
SIGTERM_CONNS=${SIGTERM_CONNS:-$CONNS}
default_sigterm_requests=$((REQUESTS / 5))
((default_sigterm_requests < 10000)) && default_sigterm_requests=10000
SIGTERM_REQUESTS=${SIGTERM_REQUESTS:-$default_sigterm_requests}
MAX_SECS=${MAX_SECS:-900}
MIEMU_LOG=${MIEMU_LOG:-miemu=warn}
MIEMU_EXIT_SECS=${MIEMU_EXIT_SECS:-15}
PHASES=${PHASES:-"load sigterm"}
RESULTS_DIR=${RESULTS_DIR:-target/load-test}
CONFIG=tools/loadgen/load.toml

log() { echo "load-test: $*" >&2; }

# Each process holds one descriptor per connection, plus some.
want=$((CONNS > SIGTERM_CONNS ? CONNS : SIGTERM_CONNS))
want=$((want + 4096))
if (($(ulimit -n) < want)); then
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if (($(ulimit -n) < want)); then
    log "need ulimit -n >= $want, have $(ulimit -n) (hard $(ulimit -Hn))"
    exit 1
fi

if [[ -n "${MIEMU_BIN:-}" ]]; then
    # An optimised build made elsewhere (CI passes the static release binary).
    MIEMU=$MIEMU_BIN
    log "using $MIEMU; building the load generator (release)"
else
    log "building miemu and the load generator (release)"
    nice -n 10 cargo build --release --quiet
    MIEMU=target/release/miemu
fi
nice -n 10 cargo build --release --quiet --locked --manifest-path tools/loadgen/Cargo.toml
LOADGEN=tools/loadgen/target/release/miemu-loadgen

mkdir -p "$RESULTS_DIR"
work=$(mktemp -d)
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        sleep 2
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Starts miemu on 127.0.0.1:0; sets pid and addr.
start_miemu() {
    local phase=$1
    rm -rf "$work/env"
    RUST_LOG=$MIEMU_LOG "$MIEMU" serve --config "$CONFIG" --listen 127.0.0.1:0 \
        --key-dir "$work/keys" --env-dir "$work/env" >"$RESULTS_DIR/miemu-$phase.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        [[ -s "$work/env/api.env" ]] && break
        kill -0 "$pid" 2>/dev/null || { log "miemu exited at start-up"; cat "$RESULTS_DIR/miemu-$phase.log" >&2; exit 1; }
        sleep 0.1
    done
    local endpoint
    endpoint=$(sed -n 's/^IDENTITY_ENDPOINT=//p' "$work/env/api.env")
    addr=${endpoint#http://}
    addr=${addr%%/*}
    [[ "$addr" == 127.0.0.1:* ]] || { log "unexpected endpoint '$endpoint'"; exit 1; }
    log "$phase: miemu pid $pid on $addr"
}

# Waits (bounded) for miemu to exit; sets exit_status (a number or
# "timeout"). Not in a subshell: only this shell can reap its child.
wait_exit() {
    local deadline=$((SECONDS + MIEMU_EXIT_SECS))
    while kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid")" != Z* ]]; do
        if ((SECONDS >= deadline)); then
            exit_status=timeout
            return
        fi
        sleep 0.1
    done
    exit_status=0
    wait "$pid" || exit_status=$?
}

# Connections closed by the previous phase linger in TIME_WAIT for 60 s and
# hold ephemeral ports, which makes opening thousands of new ones slow.
wait_time_wait() {
    command -v ss >/dev/null || return 0
    local deadline=$((SECONDS + 70)) n
    while n=$(ss -Htan state time-wait | wc -l) && ((n > 1000 && SECONDS < deadline)); do
        sleep 2
    done
}

failed=0
check_log() {
    local phase=$1
    if grep -Eiq 'panick|panic' "$RESULTS_DIR/miemu-$phase.log"; then
        log "$phase: miemu logged a panic"
        failed=1
    fi
    local cap
    cap=$(grep -c 'connection limit reached' "$RESULTS_DIR/miemu-$phase.log" || true)
    log "$phase: 'connection limit reached' log lines: $cap"
}

for phase in $PHASES; do
    wait_time_wait
    case $phase in
    load)
        start_miemu load
        rc=0
        MIEMU_PID=$pid ADDR=$addr LOAD_CONFIG=$CONFIG MODE=load CONNS=$CONNS REQUESTS=$REQUESTS \
            MAX_SECS=$MAX_SECS RESULT_JSON="$RESULTS_DIR/load.json" \
            timeout $((MAX_SECS + 120)) "$LOADGEN" >/dev/null || rc=$?
        cat "$RESULTS_DIR/load.json" >&2 || true
        [[ $rc == 0 ]] || { log "load: loadgen exited $rc"; failed=1; }
        kill -0 "$pid" 2>/dev/null || { log "load: miemu died under load"; failed=1; }
        # Memory once the connections are gone: bounded means it falls back.
        sleep 2
        log "load: miemu after the run: $(grep -E '^VmRSS' "/proc/$pid/status" | tr -s ' ')," \
            "$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l) descriptors"
        kill -TERM "$pid" 2>/dev/null || true
        wait_exit
        [[ "$exit_status" == 0 ]] || { log "load: miemu exit after SIGTERM: $exit_status"; failed=1; }
        pid=""
        check_log load
        ;;
    sigterm)
        start_miemu sigterm
        rc=0
        MIEMU_PID=$pid ADDR=$addr LOAD_CONFIG=$CONFIG MODE=sigterm CONNS=$SIGTERM_CONNS \
            REQUESTS=$SIGTERM_REQUESTS SIGTERM_AFTER=$((SIGTERM_REQUESTS / 2)) \
            MAX_SECS=$MAX_SECS RESULT_JSON="$RESULTS_DIR/sigterm.json" \
            timeout $((MAX_SECS + 120)) "$LOADGEN" >/dev/null || rc=$?
        cat "$RESULTS_DIR/sigterm.json" >&2 || true
        [[ $rc == 0 ]] || { log "sigterm: loadgen exited $rc"; failed=1; }
        wait_exit
        [[ "$exit_status" == 0 ]] || { log "sigterm: miemu exit after SIGTERM: $exit_status"; failed=1; }
        log "sigterm: miemu exited with $exit_status"
        pid=""
        check_log sigterm
        ;;
    *)
        log "unknown phase $phase"
        exit 2
        ;;
    esac
done

if ((failed)); then
    log "FAILED (results and miemu logs in $RESULTS_DIR)"
    exit 1
fi
log "passed (results and miemu logs in $RESULTS_DIR)"
