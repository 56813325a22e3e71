#!/usr/bin/env bash
# Regenerates docs/benchmarks.md from one run: every figure and every ratio in it measured in the same run,
# on the machine it describes. Needs root (BPF, network namespaces); about 7 minutes after the build, `--quick` about 1.5.
#
#   sudo scripts/bench.sh [--quick] [--output FILE] [--skip-build]
#
# Sections (each bounded in time; one that fails is reported as failed in the document and the rest still run):
#   xdp        gatewarden-bench: XDP ns per packet against the seed's naive program (BPF_PROG_TEST_RUN)
#   veth_drop  scripts/bench/veth_drop.py: packets/s a receiver namespace drops, per filter (trafgen on veth)
#   nginx      scripts/bench/nginx_reject.py: nginx worker CPU per limit_req 429, plain HTTP and TLS
#   syn_flood  scripts/bench/syn_flood.py: a spoofed SYN flood against nginx TLS, with and without Gatewarden
#   scrape     gatewarden-scrape-bench: scrape latency and memory against state size
#   lists      gatewarden-list-bench: policy load and re-apply time with large lists
#
# Everything it makes is named bench-<PID>-... or carries the benchmark's PID, lives in network namespaces
# it creates and in a private mount namespace (bpffs pins), and is removed on exit, on failure and on Ctrl-C.
# Benchmarks measure; a slow machine never fails a run. Run it on a quiet machine: other work takes CPU
# from generators and measured processes alike.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ left in scripts/bench

usage() {
  sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

quick=0
skip_build=0
output=docs/benchmarks.md
in_mount_namespace=0
arguments=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --skip-build) skip_build=1 ;;
    --output) [ $# -ge 2 ] || usage 2; output=$2; shift ;;
    --in-mount-namespace) in_mount_namespace=1 ;;  # internal: the run re-executed in its mount namespace
    -h|--help) usage 0 ;;
    *) echo "bench: unknown argument: $1" >&2; usage 2 ;;
  esac
  shift
done

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root (BPF programs, network namespaces, nftables)" >&2
  exit 1
fi

if [ "$in_mount_namespace" -eq 0 ]; then
  bash scripts/install-deps.sh
  if [ "$skip_build" -eq 0 ]; then
    echo "bench: building (release)" >&2
    swift build -c release
  fi
  # The rest runs in a private mount namespace with a bpffs of its own: Gatewarden's pins go there and
  # vanish with it, whatever happens to this run. exec keeps the PID, so names stay bench-$$.
  exec unshare -m --propagation private bash "$0" "${arguments[@]}" --in-mount-namespace
fi

mount -t bpf bpf /sys/fs/bpf
bin=$(swift build -c release --show-bin-path)
for tool in gatewarden gatewarden-bench gatewarden-scrape-bench gatewarden-list-bench gatewarden-ban-bench \
            gatewarden-store-bench gatewarden-feed-bench; do
  [ -x "$bin/$tool" ] || { echo "bench: $bin/$tool is missing: run without --skip-build" >&2; exit 1; }
done

tag=bench-$$
results=$(mktemp -d "/tmp/$tag-results.XXXXXX")
section_pid=""
failed=()

# Every process below PID, children first found: a tool may start its own in other process groups
# (Foundation's Process does), and those must end with the section too.
descendants() {
  local child
  for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

# Ends the running section: its process group (timeout made one of its own) and every process below it,
# then the namespaces its tools name after their own PIDs, and every namespace named after this run.
end_section() {
  [ -n "$section_pid" ] || return 0
  local processes
  processes=$(descendants "$section_pid")
  kill -TERM -- "-$section_pid" $processes 2>/dev/null || true
  # Up to 10 s for them to remove what they made (the Python scripts do on SIGTERM).
  local _ target alive
  for _ in $(seq 50); do
    alive=0
    for target in "-$section_pid" $processes; do
      kill -0 -- "$target" 2>/dev/null && alive=1
    done
    [ "$alive" -eq 1 ] || break
    sleep 0.2
  done
  kill -KILL -- "-$section_pid" $processes 2>/dev/null || true
  for pid in $processes; do
    for namespace in "gw-scrape-bench-$pid" "gwbench-lists-$pid"; do
      ip netns pids "$namespace" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
      ip netns del "$namespace" 2>/dev/null || true
    done
  done
  section_pid=""
}

cleanup() {
  set +e
  end_section
  for namespace in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$tag-"); do
    ip netns pids "$namespace" | xargs -r kill -KILL 2>/dev/null
    ip netns del "$namespace"
  done
  rm -rf "$results"
}
trap cleanup EXIT
trap 'echo "bench: interrupted; removing what the run made" >&2; exit 130' INT TERM

# run_section NAME SECONDS EXTENSION COMMAND...: the command's stdout goes to RESULTS/NAME.EXTENSION, its
# stderr to the terminal and RESULTS/NAME.log; past SECONDS, or on a failure, the end of that log goes to
# RESULTS/NAME.error instead and the run goes on.
run_section() {
  local name=$1 limit=$2 extension=$3
  shift 3
  echo "bench: $name (at most $limit s)" >&2
  local started=$SECONDS status=0
  timeout -k 15 "$limit" "$@" > "$results/$name.$extension" 2> >(tee "$results/$name.log" >&2) &
  section_pid=$!
  wait "$section_pid" || status=$?
  section_pid=""
  if [ "$status" -ne 0 ]; then
    { [ "$status" -eq 124 ] && echo "stopped after $limit s"; tail -n 15 "$results/$name.log"; } > "$results/$name.error"
    rm -f "$results/$name.$extension"
    failed+=("$name")
    echo "bench: $name failed (status $status); going on" >&2
  else
    echo "bench: $name done in $((SECONDS - started)) s" >&2
  fi
}

python3 scripts/bench/report.py machine > "$results/machine.json"
if [ "$quick" -eq 1 ]; then
  mode=quick
  xdp=(--runs 3 --sources 200000 --hot-repeat 200000); veth=(--frames 300000 --rounds 1)
  nginx=(--scale 0.2 --rounds 1); syn=(--seconds 3 --rounds 1); scrape=(--scrapes 10); lists=(--sizes 5000 --runs 1)
  bans=(--bans 20000 --runs 1)
else
  mode=full
  xdp=(--runs 7 --sources 1000000); veth=(--frames 1000000 --rounds 3)
  nginx=(--scale 1 --rounds 3); syn=(--seconds 3 --rounds 5); scrape=(--scrapes 30); lists=(--runs 3)
  bans=(--bans 100000 --runs 3)
fi

started=$SECONDS
run_section xdp 240 txt "$bin/gatewarden-bench" "${xdp[@]}"
run_section veth_drop 300 json python3 scripts/bench/veth_drop.py --tag "$tag-drop" --gatewarden "$bin/gatewarden" "${veth[@]}"
run_section nginx_reject 300 json python3 scripts/bench/nginx_reject.py --tag "$tag-nginx" "${nginx[@]}"
run_section syn_flood 360 json python3 scripts/bench/syn_flood.py --tag "$tag-syn" --gatewarden "$bin/gatewarden" "${syn[@]}"
run_section scrape 300 txt "$bin/gatewarden-scrape-bench" "${scrape[@]}"
run_section lists 420 txt "$bin/gatewarden-list-bench" --gatewarden "$bin/gatewarden" "${lists[@]}"
run_section bans 300 txt "$bin/gatewarden-ban-bench" "${bans[@]}"
run_section store 180 txt "$bin/gatewarden-store-bench"
run_section feed 240 txt "$bin/gatewarden-feed-bench"

reproduce="sudo scripts/bench.sh"
[ "$quick" -eq 1 ] && reproduce+=" --quick"
python3 scripts/bench/report.py render --results "$results" --output "$output" --seconds $((SECONDS - started)) \
  --mode "$mode" --reproduce "$reproduce"
echo "bench: wrote $output in $((SECONDS - started)) s" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: sections that failed: ${failed[*]} (reported as such in $output)" >&2
  exit 1
fi
