#!/usr/bin/env bash
# Runs CloudCommerce's benchmark scenarios end to end: builds the worker,
# devstack (the emulator host) and loadgen binaries, then runs bench/runner,
# which starts the emulator and worker(s) as separate processes per
# measurement, measures, writes bench/figures.md and bench/plot.svg, prints
# the cost model, and exits non-zero when a target is missed.
#
#   bench/run.sh                 # everything (~45 min on 2 cores)
#   bench/run.sh -only steady    # requests and CPU per order only
#   bench/run.sh -only peer      # the same 2,000-order burst against CloudCommerce, then Temporal
#   bench/run.sh -quick          # smoke test of the script (figures meaningless)
#   bench/run.sh -only headline  # every figure the README quotes, into bench/headline.md
#
# The headline is one invocation of at most 20 minutes on 2 cores: the build
# (≤ 1 min with a warm Go cache; the Temporal CLI installed beforehand), then
# eight steps each under its own deadline (bench/runner/headline.go):
# steady batched, batched-compact and naive 1 min 50 s each, SDK floor
# 1.5 min, peer 3.5 min, flash sale 3 min, ladder batched 3 min, ladder naive
# 2.5 min = 19 min.
# `bench/run.sh -only headline -quick` checks the machinery in a few minutes
# and marks bench/headline.md as a smoke run.
#
# The peer step (in the full run and with -only peer) needs the Temporal CLI
# v1.5.1: it is installed once with `go install` into
# $CLOUDCOMMERCE_TOOLS_DIR/temporal-v1.5.1 (default
# ~/.cache/cloudcommerce/tools), which takes several minutes the first time,
# and the peer (bench/peers/temporal, its own Go module) is built next to the
# other binaries.
#
# Raw JSON lines and process logs go to bench/results/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=bench/results/bin
mkdir -p "$bin"
echo "building worker, devstack, loadgen into $bin"
go build -o "$bin/" ./cmd/worker ./cmd/devstack ./cmd/loadgen

peer=true
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
	case "${args[i]}" in
	-only | --only) [[ "${args[i + 1]:-}" == *peer* || "${args[i + 1]:-}" == *headline* ]] || peer=false ;;
	-only=* | --only=*) [[ "${args[i]}" == *peer* || "${args[i]}" == *headline* ]] || peer=false ;;
	-from-summary | --from-summary | -from-summary=* | --from-summary=*) peer=false ;;
	esac
done
if $peer; then
	tools="${CLOUDCOMMERCE_TOOLS_DIR:-$HOME/.cache/cloudcommerce/tools}"
	temporal="$tools/temporal-v1.5.1/temporal"
	if [ ! -x "$temporal" ]; then
		echo "installing the Temporal CLI v1.5.1 into $(dirname "$temporal") with go install (several minutes, once)"
		mkdir -p "$(dirname "$temporal")"
		GOBIN="$(cd "$(dirname "$temporal")" && pwd)" go install github.com/temporalio/cli/cmd/temporal@v1.5.1
	fi
	echo "building the Temporal peer (bench/peers/temporal) into $bin"
	(cd bench/peers/temporal && go build -o "$OLDPWD/$bin/temporal-peer" .)
	set -- -temporal "$temporal" "$@"
fi
exec go run ./bench/runner -bin "$bin" "$@"
