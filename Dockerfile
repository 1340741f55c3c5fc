# syntax=docker/dockerfile:1
# reminder: one image for every role (`reminder run producer|sender|tracker|api`, `reminder migrate`).
#
#   docker build -t reminder .
#   docker compose up --scale sender=4      (see docker-compose.yml)

# ---- build ------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole context (see .dockerignore): the build embeds migrations/, config/default.toml and
# the dashboard's assets. Cache mounts keep the registry and target/ between builds, so a
# source change recompiles only this crate.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin reminder \
    && install -D -m 0755 target/release/reminder /out/reminder

# ---- run --------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to the WhatsApp provider (reqwest's rustls verifies against the system's
# roots). curl: the health checks. Unpinned on purpose: Debian stable only ships security and bug
# fixes, which a rebuild should pick up.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 reminder \
    && useradd --system --uid 10001 --gid reminder --home-dir /app --no-create-home \
               --shell /usr/sbin/nologin reminder
WORKDIR /app
COPY --from=builder /out/reminder /usr/local/bin/reminder
COPY config/ /app/config/
# Numeric, so orchestrators can check it is not root (runAsNonRoot).
USER 10001:10001
# Configuration comes from the environment (REMINDER__SECTION__KEY); these suit a container.
ENV REMINDER_CONFIG_DIR=/app/config \
    REMINDER__HTTP__BIND=0.0.0.0:8000 \
    REMINDER__TELEMETRY__FORMAT=json
# 8000: the API and dashboard (api role). 9000: /metrics, /healthz, /readyz of the other roles
# when REMINDER__HTTP__METRICS_BIND=0.0.0.0:9000.
EXPOSE 8000 9000
# The roles finish in-flight work on SIGTERM (runtime.shutdown_timeout_secs, 30 s by default).
STOPSIGNAL SIGTERM
ENTRYPOINT ["reminder"]
CMD ["run"]
