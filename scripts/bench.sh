#!/usr/bin/env bash
# Runs the performance benchmarks of res_deviceuser in one go and writes bench/results.md:
#   - provisions Asterisk (scripts/provision.sh) and installs php-cli (the FreePBX baseline
#     adds one PHP process start per login);
#   - builds the module and the benchmark driver (release);
#   - runs the criterion benchmark of the binding table twice (short measurement times; a
#     moment of interference on a shared machine shows in one run, not in both);
#   - runs the driver, which boots private Asterisk instances under bench/tmp/ (their own
#     ports), measures the module against baselines and writes the report.
#   - runs the benchmark of several nodes (two nodes and PostgreSQL, from the integration
#     tests' harness: tests/cluster.rs::cluster_benchmark), which writes
#     docs/cluster-benchmark.md.
# Extra arguments go to the driver, e.g. `scripts/bench.sh --only login,scale`; `cluster` in
# the --only list selects the benchmark of several nodes.
# Nothing here asserts a time; the exit status only says whether every scenario ran.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
log() { printf '[bench] %s\n' "$*" >&2; }

"$ROOT/scripts/provision.sh"

if ! command -v php >/dev/null 2>&1; then
    log "installing php-cli"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends php-cli >/dev/null; } \
        || log "php-cli could not be installed: the real FreePBX path will not be estimated"
fi

log "building (release)"
cargo build --release
cargo build --release -p deviceuser-bench --bins --benches

log "criterion: binding table read path (two runs; each table keeps its better one)"
rm -rf target/criterion target/criterion-run1
run_criterion() {
    cargo bench -p deviceuser-bench --bench binding_table -- \
        --warm-up-time 1 --measurement-time 3 --sample-size 30 --noplot
}
run_criterion
mv target/criterion target/criterion-run1
run_criterion

# `cluster` in --only is this script's, not the driver's.
args=("$@") driver=yes cluster=yes
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = --only ] || continue
    list=${args[$((i + 1))]:-}
    case ",$list," in *,cluster,*) ;; *) cluster=no ;; esac
    rest=$(printf ',%s,' "$list" | sed 's/,cluster,/,/g; s/^,*//; s/,*$//')
    if [ -z "$rest" ]; then driver=no; else args[$((i + 1))]=$rest; fi
done

mkdir -p bench/tmp
export DEVICEUSER_MODULE="$ROOT/target/release/libres_deviceuser.so"
if [ "$driver" = yes ]; then
    log "driver: Asterisk scenarios"
    "$ROOT/target/release/deviceuser-bench" "${args[@]}"
    log "wrote bench/results.md"
    # docs/benchmarks.md carries a copy of the results.
    "$ROOT/scripts/docs.sh"
fi
if [ "$cluster" = yes ]; then
    log "several nodes: two Asterisk nodes and PostgreSQL"
    cargo test --release --test cluster -- --ignored --nocapture --exact cluster_benchmark
    log "wrote docs/cluster-benchmark.md"
fi
