#!/usr/bin/env bash
# Rebuilds aws-provider-schema.json: the hashicorp/aws provider schema cut down
# to the resource and data types the configuration uses (root, modules/*,
# examples/*), without the documentation strings.
#
# Usage: testdata/extract-schema.sh FULL_SCHEMA.json VERSION
#   where FULL_SCHEMA.json is `terraform providers schema -json` run in any
#   directory initialised with hashicorp/aws VERSION (e.g. 5.100.0), the
#   release versions.tf pins. VERSION is recorded as provider_version.
set -euo pipefail
full=${1:?usage: extract-schema.sh FULL_SCHEMA.json VERSION}
version=${2:?usage: extract-schema.sh FULL_SCHEMA.json VERSION}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."

types() {
	find . -name '*.tf' -not -path '*/.terraform/*' -exec grep -hoE "^$1 \"aws_[a-z0-9_]+\"" {} + |
		cut -d'"' -f2 | sort -u | jq -R . | jq -s .
}

jq --arg version "$version" --argjson res "$(types resource)" --argjson data "$(types data)" '
  def attr: del(.description, .description_kind, .sensitive)
    | if .nested_type then .nested_type.attributes |= map_values(attr) else . end;
  def blk: {attributes: ((.attributes // {}) | map_values(attr)),
            block_types: ((.block_types // {}) | map_values(.block |= blk))};
  .provider_schemas["registry.terraform.io/hashicorp/aws"] as $p
  | {format_version, provider_version: $version,
     provider_schemas: {"registry.terraform.io/hashicorp/aws": {
       resource_schemas: ($p.resource_schemas | with_entries(select(.key as $k | $res | index($k))) | map_values({block: (.block | blk)})),
       data_source_schemas: ($p.data_source_schemas | with_entries(select(.key as $k | $data | index($k))) | map_values({block: (.block | blk)}))
     }}}' "$full" >testdata/aws-provider-schema.json
