#!/usr/bin/env bash
# Builds Prometheus and Alertmanager images from Debian's binaries, for
# machines that cannot pull prom/prometheus and prom/alertmanager (no
# registry, air-gapped CI). Nothing is pulled: each image is FROM scratch
# with the binary, the shared libraries `ldd` lists for it (Debian's builds
# link libc dynamically) and an empty data directory owned by nobody.
#
#   apt-get install prometheus prometheus-alertmanager   # Debian 12: 2.42, 0.25
#   deploy/prometheus/local-images.sh                    # tags below
#
# Debian's Prometheus 2.42 has the classic web UI only, under /classic/
# (http://localhost:9090/classic/targets); the HTTP API is the same.
#
# The compose test (test/compose/run.sh) builds them this way and swaps them
# in for the upstream images (test/compose/testdata/docker-compose.test.yml).
#
# Usage: local-images.sh [PROMETHEUS_TAG [ALERTMANAGER_TAG]]
#        (defaults cloudcommerce/prometheus:local, cloudcommerce/alertmanager:local)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prom_tag="${1:-cloudcommerce/prometheus:local}"
am_tag="${2:-cloudcommerce/alertmanager:local}"

# rootfs DIR SRC:NAME...: copies each binary SRC to DIR/rootfs/bin/NAME with
# every library and the program interpreter it needs, at their own paths;
# a directory SRC (Debian's web assets and templates) is copied to the
# same path.
rootfs() {
	local dir=$1 pair src lib
	shift
	mkdir -p "$dir/rootfs/bin" "$dir/data"
	for pair in "$@"; do
		src=${pair%%:*}
		if [[ -d "$src" ]]; then
			mkdir -p "$dir/rootfs$(dirname "$src")"
			cp -rL "$src" "$dir/rootfs$src"
			# Debian links the UI's libraries from /usr/share/javascript;
			# moment-timezone's raw zone data (200 MB) is not what the UI
			# loads (moment-timezone-with-data.min.js).
			rm -rf "$dir/rootfs$src/static/moment-timezone/data"
			continue
		fi
		if [[ ! -x "$src" ]]; then
			echo "local-images.sh: $src is missing: apt-get install prometheus prometheus-alertmanager" >&2
			return 1
		fi
		cp "$src" "$dir/rootfs/bin/${pair#*:}"
		# ldd prints "libc.so.6 => /lib/.../libc.so.6 (0x...)" and
		# "/lib64/ld-linux-x86-64.so.2 (0x...)"; a static binary neither.
		for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' || true); do
			mkdir -p "$dir/rootfs$(dirname "$lib")"
			cp -L "$lib" "$dir/rootfs$lib"
		done
	done
}

# build DOCKERFILE TAG SRC:NAME...
build() {
	local dockerfile=$1 tag=$2 ctx
	shift 2
	ctx="$(mktemp -d)"
	trap 'rm -rf "$ctx"' RETURN
	rootfs "$ctx" "$@"
	docker build -q -f "$root/$dockerfile" -t "$tag" "$ctx" >/dev/null
	echo "$tag"
}

# promtool and amtool ride along as the health probes (a scratch image has
# no wget): each asks its server over HTTP. Debian's builds read the web UI
# and Alertmanager's notification templates from /usr/share/prometheus
# (Alertmanager does not start without default.tmpl).
build Dockerfile.prometheus "$prom_tag" /usr/bin/prometheus:prometheus /usr/bin/promtool:promtool \
	/usr/share/prometheus/web
build Dockerfile.alertmanager "$am_tag" /usr/bin/prometheus-alertmanager:alertmanager /usr/bin/amtool:amtool \
	/usr/share/prometheus/alertmanager
