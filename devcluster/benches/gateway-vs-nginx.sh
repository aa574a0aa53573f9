#!/usr/bin/env bash
# The gateway against nginx, the fair set-up of the shared bench README: the reference backend and wrk
# on CPU 0; the whole `lgo-dash serve --ports auto --no-traffic` process and nginx (one worker) on
# CPU 1; the backend registered as the only passing user-service instance; `GET /api/users/1`;
# interleaved wrk rounds at 64 connections. Every feature of the call path stays on (spans, metrics,
# picks, breaker, access lines).
#
# Run from the repository root after `cargo build --release`:
#   bash devcluster/benches/gateway-vs-nginx.sh
# Environment: BENCH (the shared bench directory, default ../shared/bench), ROUNDS (3), DURATION
# (10s), CONNS (64), PERF=1 (also record a perf profile of lgo-dash during one extra 10 s run,
# written to $OUT/perf.data with its report in $OUT/perf.txt), STRACE=1 (count the syscalls of
# 20 000 requests, ours and nginx's), OUT (where the logs go; default a temp dir, kept).
# Needs wrk, nginx and taskset; everything stays on 127.0.0.1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/lgo-dash}
BENCH=${BENCH:-$ROOT/../shared/bench}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
for tool in wrk nginx taskset curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk nginx util-linux curl)"; exit 1; }
done
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release)"; exit 1; }
[ -d "$BENCH/refsrv" ] || { echo "no shared bench at $BENCH (set BENCH=)"; exit 1; }
REFT=${REFT:-$OUT/refsrv-target}
cargo build -q --release --manifest-path "$BENCH/refsrv/Cargo.toml" --target-dir "$REFT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

ADDR=127.0.0.1:9101 taskset -c 0 "$REFT/release/backend" 2>"$OUT/backend.err" & BE=$!; pids+=("$BE")
taskset -c 1 "$BIN" serve --ports auto --no-traffic >"$OUT/serve.out" 2>"$OUT/serve.err" & OURS=$!; pids+=("$OURS")
for _ in $(seq 300); do grep -qx ready "$OUT/serve.out" && break; sleep 0.1; done
grep -qx ready "$OUT/serve.out" || { echo "serve did not start: $(tail -n 3 "$OUT/serve.err")"; exit 1; }
GW=$(awk '$1=="gateway"{print $2}' "$OUT/serve.out")
# shellcheck source=only-backend.sh
source "$ROOT/devcluster/benches/only-backend.sh"
only_backend "$OUT/serve.out" || exit 1

if [ "${STRACE:-}" = 1 ]; then
  NG=$(NGINX_WORKERS=1 taskset -c 1 "$BENCH/nginx-proxy.sh" start 9180 127.0.0.1:9101)
  wrk -t1 -c64 -d2s "$GW/api/users/1" >/dev/null
  wrk -t1 -c64 -d2s http://127.0.0.1:9180/users/1 >/dev/null
  for who in ours nginx; do
    if [ "$who" = ours ]; then pid=$OURS; url=$GW/api/users/1; else pid=$(pgrep -P "$NG" | head -1); url=http://127.0.0.1:9180/users/1; fi
    timeout 8 strace -f -c -o "$OUT/strace-$who.txt" -p "$pid" & ST=$!
    sleep 1
    n=$(wrk -t1 -c64 -d5s "$url" | awk '/requests in/{print $1}')
    sleep 0.5; kill -INT "$ST" 2>/dev/null || true; wait "$ST" 2>/dev/null || true
    calls=$(awk '/total$/{print $4}' "$OUT/strace-$who.txt")
    echo "syscalls $who: $calls for $n requests: $(awk -v c="$calls" -v n="$n" 'BEGIN{printf "%.2f", c/n}') per request"
  done
  "$BENCH/nginx-proxy.sh" stop "$NG" >/dev/null
fi

QUIET_BELOW=${QUIET_BELOW:-15} THREADS=1 WRK_CPUS=0 NGINX_WORKERS=1 OURS_PID=$OURS BACKEND_PID=$BE \
  ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s} CONNS=${CONNS:-64} LOG="$OUT/wrk.log" \
  taskset -c 1 "$BENCH/compare-proxy.sh" "$GW/api/users/1" 127.0.0.1:9101 /users/1 | tee "$OUT/compare.txt"

if [ "${PERF:-}" = 1 ]; then
  command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)"; exit 1; }
  perf record -F 999 -g -o "$OUT/perf.data" -p "$OURS" -- sleep 10 >/dev/null 2>&1 &
  PP=$!
  taskset -c 0 wrk -t1 -c64 -d10s "$GW/api/users/1" >/dev/null
  wait "$PP" || true
  perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | head -80 >"$OUT/perf.txt"
  echo "perf profile: $OUT/perf.txt"
fi
echo "logs in $OUT"
