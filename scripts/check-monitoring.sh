#!/usr/bin/env bash
# Checks the shipped alert rules and dashboards (filled in by the monitoring work).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "check-monitoring: nothing to check yet"
