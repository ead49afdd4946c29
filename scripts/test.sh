#!/usr/bin/env bash
# The project's test command (README.md): the Rust tests (unit, property, and integration on
# real sockets against a mock engine), the container entrypoints with a fake engine, the
# deployment manifests (schemas, lint, and against the binary's own flags and routes), then the
# conformance suite with the real Azure SDKs against a mock and the real llama.cpp engine.
#
#   scripts/test.sh          everything
#   scripts/test.sh mock     the conformance suite without the real engine
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
tests/entrypoints/run.sh
tests/deploy/run.sh
conformance/run.sh "${1:-all}"
