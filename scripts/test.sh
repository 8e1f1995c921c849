#!/usr/bin/env bash
# Runs every test: provisions what the tests need (host packages, Asterisk), builds the
# module, then runs the core unit/property tests and
# the integration tests against a real Asterisk.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/provision.sh"
cargo build
export DEVICEUSER_MODULE="$ROOT/target/debug/libres_deviceuser.so"
cargo test --workspace "$@"
