#!/usr/bin/env bash
# The project's test command (README.md): the Rust tests (unit, and integration on real sockets
# against a mock engine), then the conformance suite with the real Azure SDKs when present.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
if [ -x conformance/run.sh ]; then
  conformance/run.sh "${1:-all}"
fi
