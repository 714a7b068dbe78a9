#!/usr/bin/env bash
# Checks the alert rules the way Prometheus users do, with promtool
# (Debian: apt-get install prometheus):
#   1. promtool check rules   deploy/prometheus/rules/*.yml
#   2. promtool check config  deploy/prometheus/prometheus.yml
#   3. promtool test rules    deploy/prometheus/tests/*.yml: each alert fires
#      on a synthetic series and stays quiet on a healthy one
#   4. every alert has a unit test, and the tests catch a broken rule: for
#      each alert in turn, its expression is replaced by one that never
#      fires and `promtool test rules` must fail.
#
# Usage: deploy/prometheus/check-rules.sh    (a few seconds; .ci/run runs it)
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$dir"
command -v promtool >/dev/null || { echo "check-rules.sh: promtool not found (apt-get install prometheus)" >&2; exit 1; }

promtool check rules rules/*.yml
# prometheus.yml names the rules by their path in the container; check it
# with that path pointing here.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s|/etc/prometheus/rules/|$dir/rules/|" prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"
promtool test rules tests/*.yml

# never ALERT FILE: FILE with ALERT's expression (one line or a block)
# replaced by one that never fires.
never() {
	awk -v name="$1" '
		skip && match($0, /^ */) && RLENGTH <= indent && $0 !~ /^ *$/ { skip = 0 }
		skip { next }
		$0 ~ "^ *- alert: " name "$" { target = 1 }
		target && /^ *expr:/ {
			match($0, /^ */); indent = RLENGTH
			printf "%*sexpr: vector(0) > 1\n", indent, ""
			target = 0; skip = 1; next
		}
		{ print }
	' "$2"
}

alerts=$(sed -n 's/^ *- alert: *//p' rules/*.yml)
[[ -n "$alerts" ]] || { echo "check-rules.sh: no alerts in rules/*.yml" >&2; exit 1; }
failed=0
for a in $alerts; do
	if ! grep -qx " *alertname: *$a" tests/*.yml; then
		echo "check-rules.sh: alert $a has no unit test in tests/" >&2
		failed=1
		continue
	fi
	rm -rf "$tmp/rules" "$tmp/tests"
	cp -r rules tests "$tmp/"
	for f in rules/*.yml; do
		never "$a" "$f" >"$tmp/$f"
	done
	if ! grep -q 'vector(0) > 1' "$tmp"/rules/*.yml; then
		echo "check-rules.sh: could not replace the expression of $a" >&2
		failed=1
		continue
	fi
	if ! promtool check rules "$tmp"/rules/*.yml >"$tmp/out" 2>&1; then
		echo "check-rules.sh: replacing the expression of $a broke the rule file:" >&2
		cat "$tmp/out" >&2
		failed=1
		continue
	fi
	if (cd "$tmp" && promtool test rules tests/*.yml >"$tmp/out" 2>&1); then
		echo "check-rules.sh: the unit tests still pass with $a never firing" >&2
		failed=1
	elif ! grep -q "alertname: $a," "$tmp/out"; then
		echo "check-rules.sh: with $a never firing the unit tests fail, but not on $a:" >&2
		cat "$tmp/out" >&2
		failed=1
	else
		echo "  $a never firing: the unit tests fail, as they must"
	fi
done
exit $failed
