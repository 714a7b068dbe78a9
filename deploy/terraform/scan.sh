#!/usr/bin/env bash
# Offline IaC security scan of deploy/terraform with tfsec.
#
# Installs a pinned tfsec from the Go module proxy into a cache directory if it
# is not there yet (about 70 s on a fresh machine, a second afterwards), then
# scans. Exits non-zero on any HIGH or CRITICAL finding that is not justified
# by an inline `#tfsec:ignore:<check> <reason>` comment next to the resource,
# or when the scan did not cover the topology-driven resources.
#
# Usage: deploy/terraform/scan.sh            (from anywhere)
# Env:   CLOUDCOMMERCE_TOOLS_DIR  cache for tools (default ~/.cache/cloudcommerce/tools)
#        TFSEC                    use this tfsec binary instead of installing one
set -euo pipefail

TFSEC_VERSION=v1.28.14
TFSEC_MODULE=github.com/aquasecurity/tfsec/cmd/tfsec

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
topology="$here/../topology.json"
tools="${CLOUDCOMMERCE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudcommerce/tools}"
tfsec="${TFSEC:-$tools/tfsec-$TFSEC_VERSION/tfsec}"

if [[ ! -x "$tfsec" ]]; then
	echo "scan.sh: installing tfsec $TFSEC_VERSION into ${tfsec%/*}" >&2
	start=$SECONDS
	GOBIN="${tfsec%/*}" GOFLAGS=-buildvcs=false go install "$TFSEC_MODULE@$TFSEC_VERSION"
	echo "scan.sh: tfsec installed in $((SECONDS - start))s" >&2
fi

# tfsec (<= 1.28) resolves file() against path.module twice, so
# file("${path.module}/../topology.json") fails inside the scanner, every
# for_each over the topology expands to nothing, and the queues, rules and
# tables would silently go unscanned. Scan an unmodified copy of the .tf files
# with topology.json both where Terraform reads it and where tfsec's doubled
# path lands.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/terraform"
(cd "$here" && find . -name '*.tf' -not -path '*/.terraform/*' -exec cp --parents {} "$stage/terraform/" \;)
cp "$topology" "$stage/topology.json"
mkdir -p "$stage/terraform/${stage#/}"
cp "$topology" "$stage/terraform/${stage#/}/topology.json"

common=(--no-color --no-module-downloads --exclude-downloaded-modules)

# Coverage guard: the topology-driven resources must have been evaluated.
report="$stage/report.json"
"$tfsec" "$stage/terraform" "${common[@]}" --include-passed --include-ignored --format json --out "$report" --soft-fail >/dev/null 2>&1
for want in 'module.stage_queue[\"inventory\"]' 'module.stage_queue[\"payment\"]' 'module.stage_queue[\"shipping\"]' \
	'aws_sqs_queue.rule_target_dlq[' 'aws_dynamodb_table.this[' 'aws_sns_topic.notifications' 'aws_ecr_repository.worker' 'module.worker_service'; do
	if ! grep -qF "$want" "$report"; then
		echo "scan.sh: tfsec did not evaluate $want; the scan would be incomplete" >&2
		exit 1
	fi
done

# The gate: HIGH and CRITICAL only; tfsec exits 1 when it reports anything.
"$tfsec" "$stage/terraform" "${common[@]}" --minimum-severity HIGH --concise-output
