#!/usr/bin/env bash
# Runs CloudCommerce's benchmark scenarios end to end: builds the worker,
# devstack (the emulator host) and loadgen binaries, then runs bench/runner,
# which starts the emulator and worker(s) as separate processes per
# measurement, measures, writes bench/figures.md and bench/plot.svg, prints
# the cost model, and exits non-zero when a target is missed.
#
#   bench/run.sh                 # everything (~40 min on 2 cores)
#   bench/run.sh -only steady    # requests and CPU per order only
#   bench/run.sh -quick          # smoke test of the script (figures meaningless)
#
# Raw JSON lines and process logs go to bench/results/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bench/results/bin
mkdir -p "$bin"
echo "building worker, devstack, loadgen into $bin"
go build -o "$bin/" ./cmd/worker ./cmd/devstack ./cmd/loadgen
exec go run ./bench/runner -bin "$bin" "$@"
