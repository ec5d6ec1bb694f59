# syntax=docker/dockerfile:1
#
# Switchyard's container image: docs/deploy.md walks through it.
#
#   docker build -t switchyard:0.1.0 .
#   docker run --rm -p 8080:8080 switchyard:0.1.0
#
# Two stages: the build (the Rust toolchain, ~1.5 GB, thrown away) and the
# runtime (Debian slim, the stripped binary, the shipped policies, a non-root
# user). The binary is the profile-guided build (deploy/pgo-build.sh: built,
# trained on loopback, built again; about 12 minutes on 2 cores); with
# `--build-arg PGO=0` it is the plain `cargo build --release --locked`.
# Without Docker the same steps are that script and the CMD below, run from
# the repository.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG PGO=1
WORKDIR /src
COPY . .
# The cache mounts keep the crates and the build between image builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    if [ "$PGO" = 1 ]; then \
        deploy/pgo-build.sh && bin=target/pgo/switchyard; \
    else \
        cargo build --release --locked && bin=target/release/switchyard; \
    fi \
    && install -D -s -m 0755 "$bin" /out/switchyard

FROM debian:bookworm-slim AS runtime
# ca-certificates: the system's roots, for rediss:// without a CA file.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin switchyard
COPY --from=build /out/switchyard /usr/local/bin/switchyard
# The shipped policies (offline `mock` providers) are the default; mount a
# folder over /etc/switchyard/policies for your own.
COPY policies /etc/switchyard/policies
USER 10001:10001
EXPOSE 8080
# bash's /dev/tcp: no curl in the image. Exits 0 only on a 200 from /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == *' 200 '* ]]"]
ENTRYPOINT ["switchyard"]
CMD ["serve", "--policies", "/etc/switchyard/policies", "--listen", "0.0.0.0:8080"]
