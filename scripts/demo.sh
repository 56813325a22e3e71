#!/usr/bin/env bash
# Gatewarden on a safe built-in default: a lab of two network namespaces joined by a veth pair,
# Gatewarden loaded on the gateway side, a small bounded traffic source on the client side, and
# `gatewarden serve` on 127.0.0.1:10099. The host's own interfaces and rules are never touched.
# Ctrl-C (or DEMO_SECONDS=N) stops it and removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."

gateway_ns=gw-demo-gateway
client_ns=gw-demo-client
gateway_if=gwdemo0
client_if=gwdemo1
listen=127.0.0.1:10099

bash scripts/install-deps.sh
swift build -c release --product gatewarden
bin=.build/release/gatewarden

# The enforce loop (run by `serve`) keeps its ban store here, not in the host's /var/lib/gatewarden.
export GATEWARDEN_STATE_DIR
GATEWARDEN_STATE_DIR=$(mktemp -d /tmp/gatewarden-demo-state.XXXXXX)

pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  "$bin" unload --interface "$gateway_if" --netns "$gateway_ns" >/dev/null 2>&1
  ip netns del "$client_ns" 2>/dev/null
  ip netns del "$gateway_ns" 2>/dev/null
  rm -rf "$GATEWARDEN_STATE_DIR"
  echo "demo: removed the lab namespaces and everything loaded in them"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for ns in "$gateway_ns" "$client_ns"; do
  if ip netns list | grep -qw "$ns"; then
    echo "demo: namespace $ns already exists (a previous demo still running?)" >&2
    trap - EXIT; exit 1
  fi
done
ip netns add "$gateway_ns"
ip netns add "$client_ns"
ip link add "$gateway_if" netns "$gateway_ns" type veth peer name "$client_if" netns "$client_ns"
ip -n "$gateway_ns" addr add 198.51.100.1/24 dev "$gateway_if"
ip -n "$client_ns" addr add 198.51.100.2/24 dev "$client_if"
for pair in "$gateway_ns:$gateway_if" "$client_ns:$client_if"; do
  ip -n "${pair%%:*}" link set lo up
  ip -n "${pair%%:*}" link set "${pair#*:}" up
done

"$bin" load --interface "$gateway_if" --netns "$gateway_ns"

# Traffic source: 5 new connections per second to 443 (under every default limit), for at most an hour.
ip netns exec "$client_ns" python3 - <<'PY' &
import socket, time
deadline = time.monotonic() + 3600
while time.monotonic() < deadline:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("198.51.100.1", 443))
    except OSError:
        pass
    s.close()
    time.sleep(0.2)
PY
pids+=($!)

"$bin" serve --netns "$gateway_ns" --web.listen-address "$listen" &
pids+=($!)
sleep 1
echo
echo "demo: Gatewarden protects $gateway_if in namespace $gateway_ns; metrics at http://$listen/metrics"
echo "demo: try: curl -s http://$listen/metrics | grep -E '^gatewarden_(xdp|nft)'"
echo
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  curl -sf "http://$listen/metrics" | grep -E '^gatewarden_(up|xdp_packets_total|nft_rule_packets_total)' | grep -v ' 0$'
else
  echo "demo: press Ctrl-C to stop and clean up"
  wait "${pids[-1]}"
fi
