#!/usr/bin/env bash
# Fuzzes deviceuser-core: runs every cargo-fuzz target of fuzz/ for SECONDS each (default
# 600), one after the other, with its corpus in fuzz/corpus/<target>/, then minimizes each
# corpus so what is committed stays small (a few hundred files in all).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 120 config table_ops
#
# cargo-fuzz is installed from crates.io if missing. It needs nightly compiler flags
# (sanitizers): on stable Rust, RUSTC_BOOTSTRAP=1 enables them. A crash leaves its input in
# fuzz/artifacts/<target>/; replay it with `cargo fuzz run <target> <file>`, and add it to
# the corpus (core/tests/fuzz_corpus.rs runs the whole corpus under `cargo test`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECS=${1:-600}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(config astdb_codec args dtmf table_ops)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build
BIN="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"

# Keeps the hand-written seeds (named files) and a minimal set of the rest covering the same
# edges (libFuzzer's set-cover merge, hit counts ignored): `cargo fuzz cmin` keeps thousands.
minimize() {
    local t=$1 tmp
    tmp=$(mktemp -d)
    mkdir "$tmp/min"
    "$BIN/$t" -set_cover_merge=1 -use_counters=0 "$tmp/min" "fuzz/corpus/$t" >/dev/null 2>&1 || {
        echo "minimizing the corpus of $t failed" >&2
        rm -rf "$tmp"
        return
    }
    find "fuzz/corpus/$t" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
    cp "$tmp"/min/* "fuzz/corpus/$t/" 2>/dev/null || true
    rm -rf "$tmp"
}
failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "=== fuzzing $t for ${SECS}s"
    if ! cargo fuzz run "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$t")
    fi
    minimize "$t"
    echo "=== $t: $(ls "fuzz/corpus/$t" | wc -l) corpus files"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "no crashes"
