#!/usr/bin/env bash
# Builds Gatewarden and runs every test: unit tests, and kernel tests that load XDP and
# nftables into network namespaces they create and remove. Kernel tests need root; without
# it they are reported as skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || echo "test: not root: kernel tests will be skipped (run as root to include them)" >&2
# Alert rules and dashboards first: they need no build; then the attack lab's own unit tests.
bash scripts/check-monitoring.sh
python3 -B -m unittest discover -s scripts/lab -p 'test_*.py'
# The benchmark report's own unit tests (no root, nothing measured).
python3 -B -m unittest discover -s scripts/bench -q
swift build --build-tests
# The fuzz run (PolicyFuzzTests: gatewarden-fuzz over generated broken policies and web configs) lasts
# GATEWARDEN_FUZZ_SECONDS, 30 by default.
export GATEWARDEN_FUZZ_SECONDS="${GATEWARDEN_FUZZ_SECONDS:-30}"
if [ $# -gt 0 ]; then
  swift test --skip-build "$@"
else
  # The protection suite compares throughput with and without Gatewarden: it runs alone, after
  # the others, which flood in parallel.
  swift test --skip-build --skip ProtectionTests
  swift test --skip-build --filter ProtectionTests
fi
if [ "$(id -u)" -eq 0 ] && [ $# -eq 0 ]; then
  # The attack lab at a short duration (~1.5 minutes): every scenario without and with Gatewarden against a
  # real nginx; it fails naming the assertion that broke (legitimate clients >= 99% with Gatewarden, the
  # single-source flood >= 99% dropped at XDP, the distributed /24s held to their limit, nothing left behind).
  GATEWARDEN_BIN=.build/debug/gatewarden bash scripts/lab.sh --seconds 5 --check --svg .build/lab.svg
  # End to end against a real Prometheus and Alertmanager: alerts fire and resolve, every panel has data.
  bash scripts/e2e-monitoring.sh
fi
