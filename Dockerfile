# The CloudCommerce worker image: a static binary on an empty base, as a
# non-root user, with CA certificates for real AWS endpoints and nothing else
# (no shell, no package manager, no emulator).
#
#   docker build -t cloudcommerce/worker:local .      (BuildKit, the default builder)
#   docker run --rm cloudcommerce/worker:local help
#
# Base images are pinned by exact tag. Where the registry can be reached,
# pin them by digest too (GO_IMAGE=golang:1.26.8-bookworm@sha256:...); a
# digest cannot be resolved on the offline machines this repo is built on.
#
# Dockerfile.runtime builds the same runtime stage from a binary built on the
# host, with no pull; the compose tests use that one.

ARG GO_IMAGE=golang:1.26.8-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY . .
# `go build` fetches only the modules whose packages the worker links (not
# the test-only ones: the emulator, the Dockerfile parser, the test
# libraries). The module and build caches are cache mounts: kept between
# builds on this builder, never part of an image layer.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/worker ./cmd/worker \
 && if go version -m /out/worker | grep -q sivchari/kumo; then echo "the worker must not link the emulator" >&2; exit 1; fi

FROM scratch AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/worker /worker
# 65532 is the conventional "nonroot" id (distroless); no passwd entry needed.
USER 65532:65532
# 9090: /metrics, /healthz, /readyz. 8080: the intake API, when
# CLOUDCOMMERCE_INTAKE_ADDR=:8080 turns it on.
EXPOSE 9090 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/worker", "healthcheck"]
ENTRYPOINT ["/worker"]
CMD ["run"]
