#!/usr/bin/env bash
# Runs the compose tests on the machine's Docker engine: the static checks of
# the Dockerfiles and compose files, then the whole stack (real worker image,
# emulator image, two replicas, Prometheus and Alertmanager built from
# Debian's binaries) through a killed worker, a network partition longer
# than the visibility timeout and a rolling restart; Prometheus scrapes both
# replicas and a message in a DLQ fires an alert that reaches Alertmanager.
#
# Installs what is missing first, from the Go module proxy and Debian only:
#   - the CA bundle the worker image copies in    (apt: ca-certificates)
#   - a static busybox for the local Go build image the Dockerfile test
#     builds FROM scratch                         (apt: busybox-static)
#   - Prometheus, Alertmanager, promtool, amtool for their local images
#     (apt: prometheus prometheus-alertmanager)
#   - Compose v2, what users run: built from its Go module as a Docker CLI
#     plugin (about 90 s once, cached); if that fails, Debian's
#     docker-compose 1.29 (apt), which the compose files also support.
#
# Usage: test/compose/run.sh           (from anywhere; about 3 minutes)
# Env:   CLOUDCOMMERCE_COMPOSE     force a Compose command, e.g. docker-compose
#        CLOUDCOMMERCE_TOOLS_DIR   cache for tools (default ~/.cache/cloudcommerce/tools)
set -euo pipefail

COMPOSE_VERSION=v2.40.3
COMPOSE_MODULE=github.com/docker/compose/v2

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="/usr/local/go/bin:$PATH"
start=$SECONDS

say() { printf 'run.sh: %s\n' "$*" >&2; }

apt_install() {
	say "installing $* from Debian"
	if [[ -z "${_apt_updated:-}" ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
		_apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! docker info >/dev/null 2>&1; then
	say "no Docker engine answers (docker info failed); start it first"
	exit 1
fi

if [[ ! -s /etc/ssl/certs/ca-certificates.crt ]]; then
	apt_install ca-certificates
fi
if [[ ! -x /bin/busybox ]]; then
	apt_install busybox-static
fi
# Prometheus and Alertmanager images are built from Debian's binaries
# (deploy/prometheus/local-images.sh): nothing to pull.
if [[ ! -x /usr/bin/prometheus || ! -x /usr/bin/prometheus-alertmanager ]]; then
	apt_install --no-install-recommends prometheus prometheus-alertmanager
fi

# Compose v2 as a CLI plugin, built from its module, unless present.
install_compose_v2() {
	local tools="${CLOUDCOMMERCE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudcommerce/tools}"
	local dir="$tools/compose-$COMPOSE_VERSION"
	local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
	if [[ ! -x "$dir/docker-compose" ]]; then
		say "building Compose $COMPOSE_VERSION from the Go module proxy into $dir"
		local t0=$SECONDS
		mkdir -p "$dir/src"
		(
			cd "$dir/src"
			[[ -f go.mod ]] || go mod init cloudcommerce-tools/compose >/dev/null 2>&1
			GOFLAGS=-mod=mod timeout 900 go get "$COMPOSE_MODULE/cmd@$COMPOSE_VERSION" >/dev/null 2>&1
			CGO_ENABLED=0 GOFLAGS=-mod=mod timeout 900 go build -trimpath \
				-ldflags="-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
				-o "$dir/docker-compose" "$COMPOSE_MODULE/cmd"
		) || { say "could not build Compose $COMPOSE_VERSION"; return 1; }
		say "Compose built in $((SECONDS - t0))s"
	fi
	mkdir -p "$plugins"
	install -m 0755 "$dir/docker-compose" "$plugins/docker-compose"
}

if [[ -z "${CLOUDCOMMERCE_COMPOSE:-}" ]] && ! docker compose version >/dev/null 2>&1; then
	if ! install_compose_v2 || ! docker compose version >/dev/null 2>&1; then
		if ! command -v docker-compose >/dev/null 2>&1; then
			apt_install docker-compose
		fi
		export CLOUDCOMMERCE_COMPOSE=docker-compose
	fi
fi
if [[ -n "${CLOUDCOMMERCE_COMPOSE:-}" ]]; then
	say "using $CLOUDCOMMERCE_COMPOSE ($($CLOUDCOMMERCE_COMPOSE version --short 2>/dev/null || echo '?'))"
else
	say "using docker compose $(docker compose version --short)"
fi

rc=0
CLOUDCOMMERCE_DOCKER_TESTS=1 go test ./test/compose/ -run 'TestDockerfile|TestCompose' -count=1 -v -timeout 20m || rc=$?
say "finished in $((SECONDS - start))s (exit $rc)"
exit $rc
