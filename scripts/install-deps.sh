#!/usr/bin/env bash
# Installs the system packages Gatewarden builds and runs with (Debian 12).
# Swift itself is expected on PATH (https://www.swift.org/install/linux/).
set -euo pipefail

packages=(
  # build: the C libraries Gatewarden links, and what the BPF program includes
  pkg-config libbpf-dev libnftables-dev libmicrohttpd-dev libelf-dev zlib1g-dev libcrypt-dev linux-libc-dev
  # the enforce loop's ban store: SQLite, through GRDB
  libsqlite3-dev
  # run and test: network namespaces and veth (tests only), nft for checks, traffic and scrapes
  iproute2 nftables curl python3
  # protection tests and the attack lab (scripts/lab.sh): a real nginx with TLS (a certificate made by openssl)
  # under floods of raw AF_PACKET frames from Python; tc (iproute2) queues the clients' veths, taskset and
  # nsenter (util-linux) pin generators and read counters in the lab's namespaces
  nginx-light openssl util-linux
  # offloads off on a test's veth (ethtool -K): MTU-sized segments, a NIC's packet rate, not GSO's
  ethtool
  # benchmarks (scripts/bench.sh): trafgen floods veth pairs; timeout (coreutils) bounds the generators
  netsniff-ng coreutils
  # persist tests: systemd-analyze verify reads the boot unit
  systemd
  # monitoring checks: promtool (rules, metrics), a real Prometheus and Alertmanager, the Python
  # client's strict OpenMetrics parser
  prometheus prometheus-alertmanager python3-prometheus-client python3-yaml
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: needs root (apt-get install)" >&2
  exit 1
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v swift >/dev/null || { echo "install-deps: swift is not on PATH" >&2; exit 1; }
