# iotemu container image: a static `iotemu` binary on `scratch` (no shell, no libc, no CA store).
#
#   docker build -t iotemu .
#   docker run -p 8883:8883 -p 443:443 -p 9180:9180 -v iotemu-data:/data iotemu
#
# Targets:
#   (default, the last stage) builds the binary from source in `rust:1.95`, then copies it onto
#     `scratch`;
#   prebuilt  copies an already built static binary from the build context instead (no base image
#     to pull, used by .ci/container where no registry is reachable):
#       RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p iotemu --bin iotemu \
#         --target x86_64-unknown-linux-gnu
#       mkdir ctx && cp target/x86_64-unknown-linux-gnu/release/iotemu ctx/
#       docker build --target prebuilt -f Dockerfile ctx
#     (build-arg IOTEMU_BINARY names another path inside the context).
#
# See README.md "Run in Docker" and docs/docker.md.

ARG RUST_IMAGE=rust:1.95

# --- the runtime configuration, shared by both image targets ------------------------------------
FROM scratch AS runtime
# Listen on every container address: published ports arrive on the container's eth0, not on
# its loopback. The control port (plain HTTP: /health, /ca.pem, /telemetry, …) too, so that
# `-p 9180:9180` works; iotemu's own default for both is 127.0.0.1.
ENV IOTEMU_BIND=0.0.0.0 \
    IOTEMU_CONTROL_BIND=0.0.0.0 \
    IOTEMU_MQTT_PORT=8883 \
    IOTEMU_HTTPS_PORT=443 \
    IOTEMU_CONTROL_PORT=9180 \
    IOTEMU_DATA_DIR=/data
# MQTT over TLS, HTTPS (REST, MQTT and AMQP over WebSocket), AMQP over TLS (service C2D, Event Hubs), control.
EXPOSE 8883 443 5671 9180
# Durable state (IOTEMU_DATA_DIR above): state and the emulator CA survive restarts.
VOLUME /data
# `iotemu healthcheck` asks GET /health on 127.0.0.1:$IOTEMU_CONTROL_PORT; no shell needed.
HEALTHCHECK --interval=5s --timeout=5s --start-period=5s --retries=3 CMD ["/iotemu", "healthcheck"]
ENTRYPOINT ["/iotemu"]

# --- target `prebuilt`: a static binary from the build context ------------------------------------
FROM runtime AS prebuilt
ARG IOTEMU_BINARY=iotemu
COPY ${IOTEMU_BINARY} /iotemu

# --- the static binary, built from source ---------------------------------------------------------
# glibc with crt-static (no musl target needed; ring's C code links statically too), for the
# builder's own architecture (x86_64-unknown-linux-gnu on amd64). The explicit --target keeps
# RUSTFLAGS away from build scripts and proc-macros.
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN target="$(rustc -vV | sed -n 's/^host: //p')" \
 && cargo build --locked --release -p iotemu --bin iotemu --target "$target" \
 && cp "target/$target/release/iotemu" /iotemu \
 && /iotemu --version

# --- default target: the image -------------------------------------------------------------------
FROM runtime
COPY --from=build /iotemu /iotemu
