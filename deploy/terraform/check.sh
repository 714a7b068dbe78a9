#!/usr/bin/env bash
# Terraform's own checks of the module and the example root, offline when a
# provider mirror is at hand: terraform fmt -check, then in deploy/terraform
# and deploy/terraform/examples/complete `terraform init -backend=false`,
# `terraform validate` and `terraform test` (the suites in tests/, planned
# and applied against a mocked aws provider).
#
# The hashicorp/aws provider comes from, in this order:
#   1. a filesystem mirror: $CLOUDCOMMERCE_TF_PROVIDER_MIRROR, else
#      /opt/tf-plugins, when it holds registry.terraform.io/hashicorp/aws
#      (used through a CLI configuration file written to a temporary
#      directory, never a committed one);
#   2. the Terraform registry (a plain terraform init);
# and when neither works, or terraform is not installed, the checks are
# skipped with a message saying why (exit 0): the Go tests still run.
#
# Usage: deploy/terraform/check.sh     (from anywhere)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dirs=("$here" "$here/examples/complete")

if ! command -v terraform >/dev/null 2>&1; then
	echo "check.sh: SKIPPED: terraform is not installed, so fmt, init, validate and test did not run" >&2
	exit 0
fi
terraform version | head -1
terraform fmt -check -recursive "$here"

mirror="${CLOUDCOMMERCE_TF_PROVIDER_MIRROR:-/opt/tf-plugins}"
using_mirror=false
if [[ -d "$mirror/registry.terraform.io/hashicorp/aws" ]]; then
	cli_dir=$(mktemp -d)
	trap 'rm -rf "$cli_dir"' EXIT
	cat >"$cli_dir/terraformrc" <<TFRC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
TFRC
	export TF_CLI_CONFIG_FILE="$cli_dir/terraformrc"
	using_mirror=true
	echo "check.sh: hashicorp/aws from the provider mirror $mirror"
else
	echo "check.sh: no provider mirror at $mirror; downloading hashicorp/aws from the registry"
fi

for dir in "${dirs[@]}"; do
	if ! out=$(terraform -chdir="$dir" init -backend=false -input=false -no-color 2>&1); then
		echo "$out" >&2
		# Only an unreachable registry is a reason to skip; a broken
		# configuration, or a mirror that fails, fails the check.
		if [[ $using_mirror == false ]] && grep -q "Failed to query available provider packages\|Failed to install provider" <<<"$out"; then
			echo "check.sh: SKIPPED: terraform init could not install the hashicorp/aws provider (no mirror at $mirror and the registry is unreachable); validate and test did not run" >&2
			exit 0
		fi
		exit 1
	fi
done

for dir in "${dirs[@]}"; do
	echo "check.sh: validate and test in ${dir#"$(dirname "$(dirname "$here")")/"}"
	terraform -chdir="$dir" validate -no-color
	terraform -chdir="$dir" test -no-color
done
