#!/usr/bin/env bash
# The project's test command (README.md): the Rust tests (unit, property, and integration on
# real sockets against a mock engine), the profile-guided build's training run, the container
# entrypoints with a fake engine, the deployment manifests (schemas, lint, and against the
# binary's own flags and routes), then the conformance suite with the real Azure SDKs against a
# mock and the real llama.cpp engine.
#
#   scripts/test.sh          everything
#   scripts/test.sh mock     the conformance suite without the real engine
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
# The training run of the profile-guided build (scripts/build-pgo.sh), for a second against the
# debug binary: every request of its mix gets the answer it expects, and the proxy exits
# normally on SIGTERM (which is when an instrumented build writes its profile).
cargo run --quiet --example pgo_train -- "${CARGO_TARGET_DIR:-target}/debug/azure-openai-proxy" 1
tests/entrypoints/run.sh
tests/deploy/run.sh
conformance/run.sh "${1:-all}"
