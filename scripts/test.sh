#!/usr/bin/env bash
# The whole test suite, as CI runs it. Needs Rust, Python 3.11+ and Node.js 20+;
# everything else is installed into git-ignored folders of the repo (and, for the
# container run, Debian packages via apt when they are missing).
#
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==== %s\n' "$*"; }

step "installing the SDK clients (tests/sdk)"
bash scripts/setup-sdk.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --lib

step "cargo test (unit, integration, Python azure-identity against the binary)"
cargo test --locked
cargo build --locked --bin miemu

step "key rotation on a full disk (tiny tmpfs)"
bash scripts/key-failure-test.sh

step "Azure SDK conformance matrix (tests/sdk), in a loopback-only network namespace"
MIEMU_BIN="$PWD/target/debug/miemu" bash scripts/sdk-matrix.sh --netns --check

step "container run: Dockerfile runtime stage + docker-compose.yml on podman"
bash scripts/container-test.sh

step "fuzz smoke: each cargo-fuzz target for 20 s"
bash scripts/fuzz-smoke.sh

step "load test, CI size (500 connections, 50,000 requests), and SIGTERM under load"
MIEMU_BIN="$PWD/target/static/$(rustc -vV | sed -n "s/^host: //p")/release/miemu" bash scripts/load-test.sh

step "all suites passed"
