#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: the same set-up as
# gateway-vs-nginx.sh (the reference backend registered as the only user-service instance), the
# whole `lgo-dash serve` process under callgrind, 20 s of `GET /api/users/1` at 8 connections
# after a warm-up. Instruction counts do not depend on what else the machine is doing, so a
# change can be judged in one run on a noisy machine (user space only: the kernel's share is
# not counted).
#
# Run from the repository root after `cargo build --release`:
#   bash devcluster/benches/gateway-instructions.sh
# Environment: BIN (default target/release/lgo-dash), BENCH (the shared bench directory),
# OUT (where callgrind's file goes; default a temp dir), SECS (20).
# Needs valgrind, wrk, curl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/lgo-dash}
BENCH=${BENCH:-$ROOT/../shared/bench}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
SECS=${SECS:-20}
for tool in valgrind wrk curl callgrind_control; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install valgrind wrk curl)"; exit 1; }
done
REFT=${REFT:-$OUT/refsrv-target}
cargo build -q --release --manifest-path "$BENCH/refsrv/Cargo.toml" --target-dir "$REFT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ADDR=127.0.0.1:9101 "$REFT/release/backend" 2>/dev/null & pids+=($!)
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "$BIN" serve --ports auto --no-traffic \
  >"$OUT/serve.out" 2>"$OUT/serve.err" & VG=$!; pids+=("$VG")
for _ in $(seq 240); do grep -qx ready "$OUT/serve.out" 2>/dev/null && break; sleep 0.5; done
grep -qx ready "$OUT/serve.out" || { echo "serve did not start under valgrind"; exit 1; }
GW=$(awk '$1=="gateway"{print $2}' "$OUT/serve.out")
# shellcheck source=only-backend.sh
source "$ROOT/devcluster/benches/only-backend.sh"
only_backend "$OUT/serve.out" || exit 1
wrk -t1 -c8 -d5s "$GW/api/users/1" >/dev/null
callgrind_control -z "$VG" >/dev/null
n=$(wrk -t1 -c8 -d"${SECS}s" "$GW/api/users/1" | awk '/requests in/{print $1}')
callgrind_control -d "$VG" >/dev/null
sleep 1
file=$(ls -t "$OUT"/callgrind.out.* | head -1)
total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}')
echo "requests: $n; instructions: $total; per request: $((total / n))"
echo "callgrind file: $file (callgrind_annotate --inclusive=yes $file)"
