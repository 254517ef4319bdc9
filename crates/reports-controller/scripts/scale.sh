#!/usr/bin/env bash
# Scale benchmark of the background scans and the reports on apiserver-sim (see
# crates/reports-controller/examples/scale.rs). Slow: never run in CI.
#
#   crates/reports-controller/scripts/scale.sh [--pods N] [--namespaces N] [--changed N]
#                                               [--policies DIR] [--timeout-seconds N]
#
# Builds the two controller binaries and the benchmark in release mode, then runs it; the
# controllers run as separate processes so that their peak memory can be read.
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release -p kyverno-reports-controller -p kyverno-background-scan-controller \
    --bins --example scale
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/examples/scale" --bin-dir "$target_dir/release" "$@"
