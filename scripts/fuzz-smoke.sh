#!/usr/bin/env bash
# Fuzz smoke test for CI: builds the cargo-fuzz crate in fuzz/ and runs each
# target for FUZZ_SECS seconds (default 20), starting from the committed seed
# corpus (fuzz/seeds/<target>) plus whatever fuzz/corpus/<target> already
# holds. Fails on any crash, leak, timeout or OOM; libFuzzer writes the input
# to fuzz/artifacts/<target>/. Installs cargo-fuzz (on the nightly toolchain)
# when it is missing. The long runs are in docs/robustness.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZ_SECS=${FUZZ_SECS:-20}
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}

if ! cargo "+$TOOLCHAIN" --version >/dev/null 2>&1; then
    echo "fuzz-smoke: the $TOOLCHAIN toolchain is needed (rustup toolchain install $TOOLCHAIN)" >&2
    exit 1
fi
if ! cargo "+$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    cargo "+$TOOLCHAIN" install cargo-fuzz --locked
fi

nice -n 10 cargo "+$TOOLCHAIN" fuzz build
targets=$(cargo "+$TOOLCHAIN" fuzz list)
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
status=0
for t in $targets; do
    mkdir -p "fuzz/corpus/$t"
    dict=()
    extra=()
    [[ "$t" == query ]] && extra+=("-max_len=9000")
    [[ -f "fuzz/dicts/$t.dict" ]] && dict=("-dict=fuzz/dicts/$t.dict")
    echo "fuzz-smoke: $t for ${FUZZ_SECS}s" >&2
    if cargo "+$TOOLCHAIN" fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$FUZZ_SECS" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "${dict[@]}" "${extra[@]}" >"$logdir/$t.log" 2>&1; then
        runs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$logdir/$t.log" | tail -1 || true)
        echo "fuzz-smoke: $t ok: ${runs:-no summary}" >&2
    else
        status=1
        echo "fuzz-smoke: $t FAILED; last lines of its log:" >&2
        tail -40 "$logdir/$t.log" >&2
    fi
done
exit "$status"
