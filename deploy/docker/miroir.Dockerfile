# syntax=docker/dockerfile:1
# The Miroir image: miroir-control-plane, miroir-envoy-config and miroirctl, and the filter built
# for wasm32-wasip1 at /opt/miroir/miroir_filter.wasm (the gateway's init container copies it
# next to Envoy's bootstrap). Built from the repository's root:
#   docker build -f deploy/docker/miroir.Dockerfile -t REGISTRY/miroir:0.1.0 .
# (deploy/docker/miroir.Dockerfile.dockerignore keeps target/ and .venv/ out of the context.)

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
RUN rustup target add wasm32-wasip1
COPY . .
# Release builds (LTO, one codegen unit: a few minutes); the caches keep crates.io's sources and
# the build directory between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target wasm32-wasip1 -p miroir-filter \
    && cargo build --release --locked -p miroir-control-plane -p miroirctl -p miroir-envoy \
       --bin miroir-control-plane --bin miroirctl --bin miroir-envoy-config \
    && mkdir -p /out/bin /out/opt \
    && cp target/release/miroir-control-plane target/release/miroirctl \
          target/release/miroir-envoy-config /out/bin/ \
    && cp target/wasm32-wasip1/release/miroir_filter.wasm /out/opt/

# glibc and a shell (the gateway's init container runs `sh -c`), nothing else: the binaries link
# only libc, libm and libgcc_s, and speak plain HTTP and gRPC (TLS is the mesh's or a proxy's).
FROM debian:${DEBIAN_RELEASE}-slim
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/opt/miroir_filter.wasm /opt/miroir/miroir_filter.wasm
# Not root: a numeric user, so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
WORKDIR /tmp
EXPOSE 7701 18000
ENTRYPOINT ["miroir-control-plane"]
