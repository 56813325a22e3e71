#!/usr/bin/env bash
# The attack lab: real attacks against a real nginx in network namespaces, without and with Gatewarden,
# and what each layer did. `scripts/lab.sh --help` lists the scenarios and options. Needs root; the
# host's own interfaces and rules are never touched, and everything the lab makes is removed at the end
# (also on Ctrl-C and on failure).
#
#   scripts/lab.sh                      # every scenario, 10 s each without and with Gatewarden
#   scripts/lab.sh --seconds 5 --check  # what CI runs: exit 1 naming each failed assertion
#   GATEWARDEN_BIN=.build/debug/gatewarden scripts/lab.sh syn-flood --json
set -euo pipefail
cd "$(dirname "$0")/.."
for argument in "$@"; do
  case "$argument" in -h|--help) exec python3 -B scripts/lab/main.py --binary /bin/true --help ;; esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "lab: needs root (network namespaces, XDP, nftables)" >&2
  exit 2
fi
if [ -z "${GATEWARDEN_BIN:-}" ]; then
  swift build -c release --product gatewarden >&2
  export GATEWARDEN_BIN=.build/release/gatewarden
fi
exec python3 -B scripts/lab/main.py "$@"
