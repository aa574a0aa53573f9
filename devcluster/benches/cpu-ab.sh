#!/usr/bin/env bash
# CPU per proxied request of two lgo-dash binaries, A and B (say, main and a change), in one
# interleaved run of the gateway set-up of gateway-vs-nginx.sh (the reference backend and wrk on
# CPU 0, both `serve` processes on CPU 1, the backend the only passing user-service instance).
# User and system time per request come from /proc for each process; on a noisy machine compare
# rounds side by side, not runs.
#
#   bash devcluster/benches/cpu-ab.sh OLD_BINARY NEW_BINARY
# Environment: BENCH (the shared bench directory), ROUNDS (6), DURATION (8, seconds), OUT.
# Needs wrk, curl and taskset.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
A=${1:?usage: cpu-ab.sh BINARY_A BINARY_B}; B=${2:?usage: cpu-ab.sh BINARY_A BINARY_B}
BENCH=${BENCH:-$ROOT/../shared/bench}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
ROUNDS=${ROUNDS:-6}; DURATION=${DURATION:-8}
REFT=${REFT:-$OUT/refsrv-target}
cargo build -q --release --manifest-path "$BENCH/refsrv/Cargo.toml" --target-dir "$REFT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ADDR=127.0.0.1:9101 taskset -c 0 "$REFT/release/backend" 2>/dev/null & pids+=($!)
# shellcheck source=only-backend.sh
source "$ROOT/devcluster/benches/only-backend.sh"
declare -A PID GW
for who in A B; do
  bin=${!who}
  taskset -c 1 "$bin" serve --ports auto --no-traffic >"$OUT/serve-$who.out" 2>"$OUT/serve-$who.err" &
  PID[$who]=$!; pids+=($!)
  for _ in $(seq 300); do grep -qx ready "$OUT/serve-$who.out" && break; sleep 0.1; done
  GW[$who]=$(awk '$1=="gateway"{print $2}' "$OUT/serve-$who.out")
  BIN=$bin only_backend "$OUT/serve-$who.out"
done
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
for r in $(seq "$ROUNDS"); do
  for who in A B; do
    read -r u0 s0 < <(cpu "${PID[$who]}")
    out=$(taskset -c 0 wrk -t1 -c64 -d"${DURATION}s" --latency "${GW[$who]}/api/users/1")
    read -r u1 s1 < <(cpu "${PID[$who]}")
    n=$(echo "$out" | awk '/requests in/{print $1}')
    p99=$(echo "$out" | awk '$1=="99%"{print $2}')
    awk -v r="$r" -v who="$who" -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v t="$tick" -v d="$DURATION" -v p="$p99" \
      'BEGIN{printf "round %d %s rps=%d user_us/req=%.2f sys_us/req=%.2f cpu_us/req=%.2f p99=%s\n", r, who, n/d, u/t*1e6/n, s/t*1e6/n, (u+s)/t*1e6/n, p}'
  done
done | tee "$OUT/ab.txt"
awk '{split($5,u,"="); split($7,c,"="); split($8,p,"="); sub("ms","",p[2]);
     n[$3]++; su[$3]+=u[2]; sc[$3]+=c[2]; sp[$3]+=p[2]}
     END{for (w in n) printf "mean %s user_us/req=%.2f cpu_us/req=%.2f p99_ms=%.2f\n", w, su[w]/n[w], sc[w]/n[w], sp[w]/n[w]}' "$OUT/ab.txt" | sort
