# syntax=docker/dockerfile:1
# The filter as an image for Istio's WasmPlugin (`url: oci://REGISTRY/miroir-filter:0.1.0`):
# one layer holding plugin.wasm, nothing else. Built from the repository's root:
#   docker buildx build --platform wasi/wasm -f deploy/docker/filter.Dockerfile \
#     -t REGISTRY/miroir-filter:0.1.0 .
# Without Docker, deploy/wasm_oci.py writes the same image as an OCI image layout from a built
# .wasm (`make filter-image`), which skopeo, crane or oras push.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
RUN rustup target add wasm32-wasip1
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target wasm32-wasip1 -p miroir-filter \
    && cp target/wasm32-wasip1/release/miroir_filter.wasm /plugin.wasm

# Exactly one COPY onto scratch: exactly one layer, as Istio's image fetcher expects.
FROM scratch
COPY --from=build /plugin.wasm /plugin.wasm
