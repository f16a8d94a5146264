#!/usr/bin/env bash
# bench/run.sh: every benchmark of issue 6, side by side in one run, then
# bench/report.md (via bench/report.py) and docs/performance-throughput.png.
#
#   bench/run.sh            full run (15-25 minutes on 2 cores, longer when busy)
#   QUICK=1 bench/run.sh    smoke run (about 2 minutes; figures not meaningful)
#
# Knobs (environment): DURATION (s per wrk run, 10), REPEATS (3),
# SWEEP_DURATION (s, 5), SWEEP_REPEATS (1), COLD_RUNS (20), QUIET_BUSY (% CPU
# busy that counts as quiet, 20), QUIET_WAIT (s to wait for quiet, 60),
# MIEMU_DIR (the miemu checkout to build and measure; default: this repo),
# PORT_BASE (18080).
#
# All traffic goes to 127.0.0.1. Every load run is bounded: wrk stops after
# DURATION seconds (and is killed by `timeout` after DURATION+30 s), so the
# request count is bounded by DURATION x the machine's maximum rate; the
# cold-start poller stops after COLD_RUNS runs of at most 10 s each.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
MIEMU_DIR=${MIEMU_DIR:-$ROOT}
RESULTS=$BENCH/results
WORK=$BENCH/target/work

if [[ ${QUICK:-0} == 1 ]]; then
  : "${DURATION:=2}" "${REPEATS:=1}" "${SWEEP_DURATION:=1}" "${COLD_RUNS:=3}" "${QUIET_WAIT:=5}" "${OPENSSL_SECONDS:=1}"
fi
DURATION=${DURATION:-10}
REPEATS=${REPEATS:-3}
SWEEP_DURATION=${SWEEP_DURATION:-5}
SWEEP_REPEATS=${SWEEP_REPEATS:-1}
SWEEP_CONNS=${SWEEP_CONNS:-"1 4 16 64 256"}
COLD_RUNS=${COLD_RUNS:-20}
QUIET_BUSY=${QUIET_BUSY:-20}
QUIET_WAIT=${QUIET_WAIT:-60}
OPENSSL_SECONDS=${OPENSSL_SECONDS:-5}
PORT_BASE=${PORT_BASE:-18080}

P_MIEMU=$((PORT_BASE + 1))   # miemu, token cache on (the default)
P_MINT=$((PORT_BASE + 2))    # miemu, [tokens] cache = false
P_FLOOR=$((PORT_BASE + 3))   # bench/floor
P_PEER=$((PORT_BASE + 4))    # oauth2-mock-server
P_COLD=$((PORT_BASE + 5))    # cold-start runs

SECRET=app-secret-for-tests-only   # fixtures/config/minimal.toml, container `app`
RESOURCE_Q='resource=https%3A%2F%2Fmanagement.azure.com%2F&api-version=2019-08-01'
PEER_BODY='grant_type=client_credentials&scope=https%3A%2F%2Fmanagement.azure.com%2F.default&aud=https%3A%2F%2Fmanagement.azure.com%2F'

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- tools
ensure_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v gcc >/dev/null || missing+=(gcc)
  command -v curl >/dev/null || missing+=(curl)
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
  command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [[ ! -d $BENCH/peer/node_modules/oauth2-mock-server ]]; then
    log "npm ci (bench/peer)"
    (cd "$BENCH/peer" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [[ ! -x $BENCH/.venv/bin/python ]] || ! "$BENCH/.venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "python venv with matplotlib (bench/.venv)"
    python3 -m venv "$BENCH/.venv"
    "$BENCH/.venv/bin/pip" install -q -r "$BENCH/requirements.txt"
  fi
}

build() {
  log "building miemu (release) in $MIEMU_DIR"
  (cd "$MIEMU_DIR" && nice -n 10 cargo build --release --locked --quiet)
  log "building the floor server (release)"
  (cd "$BENCH/floor" && nice -n 10 cargo build --release --locked --quiet)
  mkdir -p "$BENCH/target"
  gcc -O2 -Wall -o "$BENCH/target/coldstart" "$BENCH/tools/coldstart.c"
  MIEMU=$MIEMU_DIR/target/release/miemu
  FLOOR=$BENCH/floor/target/release/floor
  COLD=$BENCH/target/coldstart
  PEER_CLI=$BENCH/peer/node_modules/oauth2-mock-server/dist/oauth2-mock-server.mjs
}

# ---------------------------------------------------------------- helpers
# Percent of CPU time not idle over the last second (all cores).
cpu_busy() {
  local a b
  read -r -a a < <(head -1 /proc/stat)
  sleep 1
  read -r -a b < <(head -1 /proc/stat)
  local ta=0 tb=0 i
  for i in 1 2 3 4 5 6 7 8; do ta=$((ta + a[i])); tb=$((tb + b[i])); done
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=$((tb - ta))
  ((total > 0)) || { echo 0; return; }
  echo $(( 100 * (total - idle) / total ))
}

# Waits (at most QUIET_WAIT s) until the rest of the machine is quiet; prints
# the busy % it settled on, which is recorded with the measurement.
wait_quiet() {
  local busy waited=0
  busy=$(cpu_busy)
  while ((busy > QUIET_BUSY && waited < QUIET_WAIT)); do
    sleep 2; waited=$((waited + 3)); busy=$(cpu_busy)
  done
  echo "$busy"
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

wait_port() { # port: until something accepts (at most 30 s)
  local i
  for i in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing listens on port $1"; return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

CLK_TCK=$(getconf CLK_TCK)
proc_cpu_ticks() { # pid -> utime + stime of the whole process, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

status_kib() { # pid field -> KiB
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# ---------------------------------------------------------------- servers
write_configs() {
  rm -rf "$WORK"; mkdir -p "$WORK"/{keys,env-cached,env-mint,env-cold,keys-fresh,peer}
  # The integration tests' base configuration, with the token cache on...
  cp "$MIEMU_DIR/fixtures/config/minimal.toml" "$WORK/cached.toml"
  # ...and off: every request signs a fresh token.
  { cat "$MIEMU_DIR/fixtures/config/minimal.toml"; printf '\n[tokens]\ncache = false\n'; } > "$WORK/mint.toml"
  printf 'GET /msi/token?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-IDENTITY-HEADER: %s\r\nConnection: close\r\n\r\n' \
    "$RESOURCE_Q" "$SECRET" > "$WORK/req-miemu.http"

  printf 'POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "${#PEER_BODY}" "$PEER_BODY" > "$WORK/req-peer.http"
}

start_servers() {
  local p
  for p in $P_MIEMU $P_MINT $P_FLOOR $P_PEER $P_COLD; do
    port_free "$p" || { log "port $p is in use; set PORT_BASE"; exit 1; }
  done
  RUST_LOG=warn "$MIEMU" serve --listen "127.0.0.1:$P_MIEMU" --key-dir "$WORK/keys" \
    --env-dir "$WORK/env-cached" --config "$WORK/cached.toml" >"$WORK/miemu.out" 2>&1 &
  PID_MIEMU=$!; PIDS+=("$PID_MIEMU")
  wait_port "$P_MIEMU"
  RUST_LOG=warn "$MIEMU" serve --listen "127.0.0.1:$P_MINT" --key-dir "$WORK/keys" \
    --env-dir "$WORK/env-mint" --config "$WORK/mint.toml" >"$WORK/mint.out" 2>&1 &
  PID_MINT=$!; PIDS+=("$PID_MINT")
  wait_port "$P_MINT"

  # The floor answers with exactly as many body bytes as miemu's cached answer.
  BODY_BYTES=$(curl -sf -H "X-IDENTITY-HEADER: $SECRET" "http://127.0.0.1:$P_MIEMU/msi/token?$RESOURCE_Q" | wc -c)
  "$FLOOR" "127.0.0.1:$P_FLOOR" "$BODY_BYTES" >"$WORK/floor.out" 2>&1 &
  PID_FLOOR=$!; PIDS+=("$PID_FLOOR")
  wait_port "$P_FLOOR"

  (cd "$WORK/peer" && exec node "$PEER_CLI" -a 127.0.0.1 -p "$P_PEER" --save-jwk) >"$WORK/peer.out" 2>&1 &
  PID_PEER=$!; PIDS+=("$PID_PEER")
  wait_port "$P_PEER"

  local floor_bytes peer_bytes
  floor_bytes=$(curl -sf "http://127.0.0.1:$P_FLOOR/msi/token" | wc -c)
  peer_bytes=$(curl -sf -X POST -d "$PEER_BODY" "http://127.0.0.1:$P_PEER/token" | wc -c)
  curl -sf -H "X-IDENTITY-HEADER: $SECRET" "http://127.0.0.1:$P_MINT/msi/token?$RESOURCE_Q" >/dev/null
  printf '{"miemu_body_bytes":%d,"floor_body_bytes":%d,"peer_body_bytes":%d}\n' \
    "$BODY_BYTES" "$floor_bytes" "$peer_bytes" > "$RESULTS/bodies.json"
  log "servers up: miemu=$PID_MIEMU mint=$PID_MINT floor=$PID_FLOOR peer=$PID_PEER; body bytes miemu=$BODY_BYTES floor=$floor_bytes peer=$peer_bytes"
}

# ---------------------------------------------------------------- wrk
# run_wrk PHASE TARGET CONNS DURATION REP
run_wrk() {
  local phase=$1 target=$2 conns=$3 dur=$4 rep=$5 url threads=2 busy load out
  ((conns < 2)) && threads=1
  local -x BENCH_HEADER_NAME= BENCH_HEADER_VALUE= BENCH_METHOD= BENCH_BODY= BENCH_OUT=
  case $target in
    miemu) url="http://127.0.0.1:$P_MIEMU/msi/token?$RESOURCE_Q"; BENCH_HEADER_NAME=X-IDENTITY-HEADER; BENCH_HEADER_VALUE=$SECRET ;;
    mint)  url="http://127.0.0.1:$P_MINT/msi/token?$RESOURCE_Q"; BENCH_HEADER_NAME=X-IDENTITY-HEADER; BENCH_HEADER_VALUE=$SECRET ;;
    # The floor gets byte for byte the request miemu gets (it ignores the
    # query and the header), so both parse the same request head.
    floor) url="http://127.0.0.1:$P_FLOOR/msi/token?$RESOURCE_Q"; BENCH_HEADER_NAME=X-IDENTITY-HEADER; BENCH_HEADER_VALUE=$SECRET ;;
    peer)  url="http://127.0.0.1:$P_PEER/token"; BENCH_METHOD=POST; BENCH_BODY=$PEER_BODY ;;
  esac
  local pid
  case $target in miemu) pid=$PID_MIEMU ;; mint) pid=$PID_MINT ;; floor) pid=$PID_FLOOR ;; peer) pid=$PID_PEER ;; esac
  busy=$(wait_quiet); load=$(loadavg)
  local cpu0 cpu1 requests
  cpu0=$(proc_cpu_ticks "$pid")
  out=$(timeout $((dur + 30)) wrk -t"$threads" -c"$conns" -d"${dur}s" --timeout 5s \
        -s "$BENCH/wrk/report.lua" "$url" | tail -1)
  cpu1=$(proc_cpu_ticks "$pid")
  [[ $out == '{'* ]] || { log "wrk gave no summary for $target c$conns"; return 1; }
  requests=$(sed -E 's/.*"requests":([0-9]+).*/\1/' <<<"$out")
  # Server CPU time (user + system) per request: robust to other load on the
  # machine, where req/s is not.
  local cpu_us
  cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", n ? t * 1e6 / hz / n : 0 }')
  printf '{"phase":"%s","target":"%s","conns":%d,"threads":%d,"duration":%d,"rep":%d,"busy_before_pct":%d,"load1":%s,"server_cpu_us_per_req":%s,"wrk":%s}\n' \
    "$phase" "$target" "$conns" "$threads" "$dur" "$rep" "$busy" "$load" "$cpu_us" "$out" >> "$RESULTS/wrk.jsonl"
  log "$phase $target c$conns rep$rep: $(sed -E 's/.*"rps":([0-9.]+).*"p50":([0-9]+),.*"p99":([0-9]+),.*/\1 req\/s p50 \2us p99 \3us/' <<<"$out"), server CPU ${cpu_us} us/req (busy before ${busy}%)"
}

mem_snapshot() { # label pid
  printf '{"label":"%s","rss_kib":%d,"hwm_kib":%d}\n' "$1" "$(status_kib "$2" VmRSS)" "$(status_kib "$2" VmHWM)" >> "$RESULTS/memory.jsonl"
}

# ---------------------------------------------------------------- phases
phase_env() {
  local cpu
  cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
  {
    printf '{"date":"%s","kernel":"%s","cpus":%d,"cpu":"%s","mem_gib":%d,' \
      "$(date -u +%FT%TZ)" "$(uname -r)" "$(nproc)" "$cpu" "$(awk '/MemTotal/ { print int($2/1048576+0.5) }' /proc/meminfo)"
    printf '"miemu_commit":"%s","rustc":"%s","wrk":"%s","openssl":"%s","node":"%s","peer":"oauth2-mock-server %s",' \
      "$(git -C "$MIEMU_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(rustc --version)" \
      "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" "$(openssl version | cut -d' ' -f1-2)" "$(node --version)" \
      "$(node -p "require('$BENCH/peer/node_modules/oauth2-mock-server/package.json').version")"
    printf '"duration_s":%d,"repeats":%d,"sweep_duration_s":%d,"cold_runs":%d,"load_at_start":"%s"}\n' \
      "$DURATION" "$REPEATS" "$SWEEP_DURATION" "$COLD_RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
  } > "$RESULTS/env.json"
  printf '{"miemu_bytes":%d,"floor_bytes":%d}\n' "$(stat -c %s "$MIEMU")" "$(stat -c %s "$FLOOR")" > "$RESULTS/binary.json"
}

phase_cached() {
  log "phase 1: cached path, miemu vs floor (and the peer), c64 and c1, $REPEATS x ${DURATION}s"
  sleep 1
  mem_snapshot miemu-idle "$PID_MIEMU"; mem_snapshot floor-idle "$PID_FLOOR"; mem_snapshot peer-idle "$PID_PEER"
  mem_snapshot mint-idle "$PID_MINT"
  local rep
  for rep in $(seq "$REPEATS"); do
    # Interleaved, so drift in the machine's load hits every target alike.
    run_wrk cached miemu 64 "$DURATION" "$rep"
    run_wrk cached floor 64 "$DURATION" "$rep"
    run_wrk cached miemu 1 "$DURATION" "$rep"
    run_wrk cached floor 1 "$DURATION" "$rep"
  done
  mem_snapshot miemu-load "$PID_MIEMU"; mem_snapshot floor-load "$PID_FLOOR"
}

phase_mint() {
  log "phase 2: minting path (cache off) and the peer, c64 and c1, $REPEATS x ${DURATION}s; openssl speed"
  local rep busy load
  for rep in $(seq "$REPEATS"); do
    run_wrk mint mint 64 "$DURATION" "$rep"
    run_wrk mint peer 64 "$DURATION" "$rep"
    run_wrk mint mint 1 "$DURATION" "$rep"
    run_wrk mint peer 1 "$DURATION" "$rep"
    busy=$(wait_quiet); load=$(loadavg)
    local sign
    sign=$(timeout 120 openssl speed -seconds "$OPENSSL_SECONDS" -multi 2 rsa2048 2>/dev/null \
           | awk '$1 == "rsa" && $2 == "2048" && $3 == "bits" { v = $6 } END { print v }')
    printf '{"rep":%d,"busy_before_pct":%d,"load1":%s,"sign_per_s":%s}\n' "$rep" "$busy" "$load" "${sign:-0}" >> "$RESULTS/openssl.jsonl"
    log "openssl speed -multi 2 rsa2048 rep$rep: $sign sign/s"
  done
  mem_snapshot mint-load "$PID_MINT"; mem_snapshot peer-load "$PID_PEER"
}

phase_sweep() {
  log "phase 6: throughput vs connections ($SWEEP_CONNS), ${SWEEP_DURATION}s each"
  local rep c t
  for rep in $(seq "$SWEEP_REPEATS"); do
    for c in $SWEEP_CONNS; do
      for t in miemu floor mint peer; do
        run_wrk sweep "$t" "$c" "$SWEEP_DURATION" "$rep"
      done
    done
  done
  mem_snapshot miemu-sweep "$PID_MIEMU"; mem_snapshot floor-sweep "$PID_FLOOR"
  mem_snapshot mint-sweep "$PID_MINT"; mem_snapshot peer-sweep "$PID_PEER"
}

# cold LABEL REQUEST [coldstart options] -- CMD...
cold() {
  local label=$1 req=$2; shift 2
  local busy load out
  busy=$(wait_quiet); load=$(loadavg)
  out=$(timeout 600 "$COLD" -n "$COLD_RUNS" -p "$P_COLD" -r "$req" "$@" | tail -1)
  [[ $out == '{'* ]] || { log "cold start $label failed"; return 1; }
  printf '{"label":"%s","busy_before_pct":%d,"load1":%s,"result":%s}\n' "$label" "$busy" "$load" "$out" >> "$RESULTS/coldstart.jsonl"
  log "cold start $label: median $(sed -E 's/.*"median_ms":([0-9.]+).*/\1/' <<<"$out") ms"
}

phase_cold() {
  log "phase 3: cold start, $COLD_RUNS runs each"
  local -x RUST_LOG=warn
  local jwk
  jwk=$(ls "$WORK"/peer/*.json | head -1)
  cold miemu-key-on-disk "$WORK/req-miemu.http" -- \
    "$MIEMU" serve --listen "127.0.0.1:$P_COLD" --key-dir "$WORK/keys" --env-dir "$WORK/env-cold" --config "$WORK/cached.toml"
  cold miemu-key-generated "$WORK/req-miemu.http" -f "$WORK/keys-fresh" -- \
    "$MIEMU" serve --listen "127.0.0.1:$P_COLD" --key-dir "$WORK/keys-fresh" --env-dir "$WORK/env-cold" --config "$WORK/cached.toml"
  cold miemu-mint-key-on-disk "$WORK/req-miemu.http" -- \
    "$MIEMU" serve --listen "127.0.0.1:$P_COLD" --key-dir "$WORK/keys" --env-dir "$WORK/env-cold" --config "$WORK/mint.toml"
  cold floor "$WORK/req-miemu.http" -- "$FLOOR" "127.0.0.1:$P_COLD" "$BODY_BYTES"
  cold peer-key-generated "$WORK/req-peer.http" -- node "$PEER_CLI" -a 127.0.0.1 -p "$P_COLD"
  cold peer-key-on-disk "$WORK/req-peer.http" -- node "$PEER_CLI" -a 127.0.0.1 -p "$P_COLD" --jwk "$jwk"
}

main() {
  ensure_tools
  build
  mkdir -p "$RESULTS"
  rm -f "$RESULTS"/*.jsonl "$RESULTS"/*.json "$RESULTS"/*.csv
  write_configs
  phase_env
  start_servers
  phase_cached
  phase_mint
  phase_sweep
  cleanup; PIDS=()
  phase_cold
  log "writing bench/report.md and docs/performance-throughput.png"
  "$BENCH/.venv/bin/python" "$BENCH/report.py" --results "$RESULTS" --report "$BENCH/report.md" \
    --chart "$ROOT/docs/performance-throughput.png"
  log "done: $BENCH/report.md"
}

main "$@"
