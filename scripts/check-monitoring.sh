#!/usr/bin/env bash
# Checks the shipped alert rules and dashboards with real tools:
#   - promtool check rules: alerts/*.yml are valid rule files;
#   - promtool test rules: alerts/tests/*.yml unit tests (each alert fires, stays quiet, honours for:);
#   - scripts/check_alerts.py: naming, severity, runbook_url and runbook sections, test coverage;
#   - scripts/check_dashboards.py: dashboards/*.json structure, and every query parsed by promtool.
# Needs promtool (Debian: prometheus) and Debian's /usr/bin/python3 with python3-yaml.
# Runs every check, prints each one's output, and ends with one summary line; exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=/usr/bin/python3
command -v promtool >/dev/null || { echo "check-monitoring: promtool not found (apt-get install prometheus)" >&2; exit 1; }
"$python" -c 'import yaml' 2>/dev/null || { echo "check-monitoring: $python lacks yaml (apt-get install python3-yaml)" >&2; exit 1; }

shopt -s nullglob
rule_files=(alerts/*.yml)
test_files=(alerts/tests/*.yml)
dashboards=(dashboards/*.json)
shopt -u nullglob
[ ${#rule_files[@]} -gt 0 ] || { echo "check-monitoring: no rule files in alerts/" >&2; exit 1; }
[ ${#test_files[@]} -gt 0 ] || { echo "check-monitoring: no rule tests in alerts/tests/" >&2; exit 1; }
[ ${#dashboards[@]} -gt 0 ] || { echo "check-monitoring: no dashboards in dashboards/" >&2; exit 1; }

passed=0
failed=()
run() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed+=("$name")
  fi
}

run "promtool check rules" promtool check rules "${rule_files[@]}"
run "promtool test rules" promtool test rules "${test_files[@]}"
run "check_alerts.py" "$python" scripts/check_alerts.py
run "check_dashboards.py" "$python" scripts/check_dashboards.py "${dashboards[@]}"

alerts=$(cat "${rule_files[@]}" | grep -cE '^ *- alert: ' || true)
cases=$(cat "${test_files[@]}" | grep -cE '^ *- eval_time: ' || true)
if [ ${#failed[@]} -eq 0 ]; then
  echo "check-monitoring: OK: $passed checks passed ($alerts alert rules, $cases promtool test cases, ${#dashboards[@]} dashboard(s))"
else
  echo "check-monitoring: FAILED: $(IFS=,; echo "${failed[*]}" | sed 's/,/, /g') ($passed of $((passed + ${#failed[@]})) checks passed)" >&2
  exit 1
fi
