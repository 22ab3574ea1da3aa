# syntax=docker/dockerfile:1
# agent-orch: one binary, two images.
#   docker build --target hub -t agent-orch-hub .      # the hub: distroless, non-root
#   docker build --target worker -t agent-orch-worker . # a worker: git and a shell for gates
# The build stage is shared, so building both compiles once.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# BuildKit caches the registry and the target folder between builds, so a source change does
# not recompile every dependency.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin agent-orch \
    && install -D target/release/agent-orch /out/agent-orch

# The hub: no shell, no package manager; uid 65532 (`nonroot`). SQLite is compiled in, TLS is
# rustls and the migrations are in the binary, so glibc is all it needs.
FROM gcr.io/distroless/cc-debian12:nonroot AS hub
COPY --from=build /out/agent-orch /usr/local/bin/agent-orch
USER nonroot
# The default store, sqlite://.agent-orch/hub.db, lands in the user's home (writable); mount a
# volume there, or set AGENT_ORCH_HUB_DATABASE to PostgreSQL.
WORKDIR /home/nonroot
ENV AGENT_ORCH_HUB_LISTEN=0.0.0.0:8080
EXPOSE 8080
# The image has no curl: the binary asks its own /health (which pings the store).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/agent-orch", "hub", "health", "--url", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["/usr/local/bin/agent-orch"]
CMD ["hub", "serve"]

# A worker runs task workflows, whose gates are shell commands in a git checkout.
FROM debian:bookworm-slim AS worker
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git bash \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --shell /bin/bash agent
COPY --from=build /out/agent-orch /usr/local/bin/agent-orch
USER 10001
WORKDIR /home/agent/work
ENTRYPOINT ["/usr/local/bin/agent-orch"]
CMD ["worker"]
