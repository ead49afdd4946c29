#!/usr/bin/env bash
# Soak test with its figures: N mixed requests (plain, streaming, cancelled, engine 500, bad
# body; 50 at a time) through the proxy twice on loopback; prints requests/s, answers by kind,
# file descriptors, tasks and RSS before and after the second round, and fails on a leak.
#   scripts/soak.sh [N]        (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
AOP_SOAK_REQUESTS="${1:-20000}" cargo test --release --test soak -- --nocapture 2>&1 | grep -E "^soak:|test result|panicked|leaked|not back"
