#!/usr/bin/env bash
# Offline IaC security scan of deploy/terraform with tfsec.
#
# Installs a pinned tfsec from the Go module proxy into a cache directory if it
# is not there yet (about 70 s on a fresh machine, a second afterwards), then
# scans once per compute target (ecs, lambda). Exits non-zero on any HIGH or
# CRITICAL finding that is not justified by an inline
# `#tfsec:ignore:<check> <reason>` comment next to the resource, or when a
# scan did not cover the topology-driven and compute resources.
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
# with topology.json (and the Prometheus rule files) both where Terraform
# reads them and where tfsec's doubled path lands.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/terraform"
# The example roots under examples/ hold only a provider, a backend and a call
# of this module; the module itself is what is scanned.
(cd "$here" && find . \( -name '*.tf' -o -name '*.tftpl' \) -not -path '*/.terraform/*' -not -path './examples/*' -exec cp --parents {} "$stage/terraform/" \;)
for d in "$stage" "$stage/terraform/${stage#/}"; do
	mkdir -p "$d/prometheus"
	cp "$topology" "$d/topology.json"
	cp -r "$here/../prometheus/rules" "$d/prometheus/"
done

common=(--no-color --no-module-downloads --exclude-downloaded-modules)

# Both compute targets are scanned: compute = "ecs" (the default) and
# compute = "lambda", whose resources exist only with that choice. The Lambda
# scan gets a stand-in deployment zip (only its hash is read).
printf 'stand-in for the bootstrap zip\n' >"$stage/lambda.zip"
printf '%s\n' 'region = "eu-west-1"' 'vpc_id = "vpc-0123456789abcdef0"' \
	'private_subnet_ids = ["subnet-0123456789abcdef0"]' 'image_tag = "v1.0.0"' >"$stage/ecs.tfvars"
printf '%s\n' 'region = "eu-west-1"' 'compute = "lambda"' "lambda = { package_path = \"$stage/lambda.zip\" }" >"$stage/lambda.tfvars"

for compute in ecs lambda; do
	# Coverage guard: the topology-driven and the compute resources must
	# have been evaluated.
	want=('module.stage_queue[\"inventory\"]' 'module.stage_queue[\"payment\"]' 'module.stage_queue[\"shipping\"]'
		'aws_sqs_queue.rule_target_dlq[' 'aws_dynamodb_table.this[' 'aws_sns_topic.notifications')
	if [[ $compute == ecs ]]; then
		want+=('aws_ecr_repository.worker' 'module.worker_service')
	else
		want+=('module.lambda_stage[\"inventory\"]' 'module.lambda_stage[\"payment\"]' 'module.lambda_stage[\"shipping\"]')
	fi
	report="$stage/report-$compute.json"
	"$tfsec" "$stage/terraform" "${common[@]}" --var-file "$stage/$compute.tfvars" --include-passed --include-ignored --format json --out "$report" --soft-fail >/dev/null 2>&1
	for w in "${want[@]}"; do
		if ! grep -qF "$w" "$report"; then
			echo "scan.sh: with compute = $compute tfsec did not evaluate $w; the scan would be incomplete" >&2
			exit 1
		fi
	done
	if [[ $compute == lambda ]] && grep -qF 'module.worker_service' "$report"; then
		echo "scan.sh: with compute = lambda tfsec still evaluated module.worker_service" >&2
		exit 1
	fi

	# The gate: HIGH and CRITICAL only; tfsec exits 1 when it reports anything.
	echo "scan.sh: compute = $compute" >&2
	"$tfsec" "$stage/terraform" "${common[@]}" --var-file "$stage/$compute.tfvars" --minimum-severity HIGH --concise-output
done
