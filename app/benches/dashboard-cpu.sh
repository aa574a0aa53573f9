#!/usr/bin/env bash
# CPU of the real binary, in a pseudo-terminal (tmux, 160×48), over SECS seconds each (60):
#   1. the dashboard with its embedded cluster, quiet (--no-traffic: health checks only);
#   2. the same at 100 req/s of traffic (`:traffic 100`);
#   3. `serve` alone at 100 req/s, for what the cluster costs without the dashboard;
#   4. `serve` with N (1000) external instances registered with TTL checks, idle, and
#   5. a dashboard attached to it (`--attach`).
# Prints % of one core (utime + stime from /proc). Run from the repository root after
# `cargo build --release`: bash app/benches/dashboard-cpu.sh
set -euo pipefail
BIN=${BIN:-target/release/lgo-dash}
SECS=${SECS:-60}
N=${N:-1000}
for tool in tmux curl; do command -v $tool >/dev/null || { echo "needs $tool"; exit 1; }; done
TICK=$(getconf CLK_TCK)
OUT=$(mktemp -d)
pids=()
cleanup() { tmux -L cpu kill-server 2>/dev/null || true; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
measure() { # PID LABEL
  local a b; a=$(ticks "$1"); sleep "$SECS"; b=$(ticks "$1")
  awk -v t=$((b - a)) -v hz="$TICK" -v s="$SECS" -v l="$2" 'BEGIN{printf "%-58s %5.2f %% of a core\n", l, 100*t/hz/s}'
}
dash_pid() { # the lgo-dash process tmux started (not serve)
  for p in $(pgrep -x lgo-dash); do grep -q -- "$1" "/proc/$p/cmdline" && { echo "$p"; return; }; done
}

tmux -L cpu new -d -s d -x 160 -y 48 "$BIN --ports auto --no-traffic"
sleep 6
D=$(dash_pid no-traffic)
measure "$D" "dashboard + embedded cluster, quiet"
tmux -L cpu send-keys -t d ':' 'traffic 100' Enter
sleep 5
measure "$D" "dashboard + embedded cluster, 100 req/s"
tmux -L cpu kill-server; sleep 1

"$BIN" serve --ports auto >"$OUT/serve.out" 2>/dev/null & S=$!; pids+=("$S")
for _ in $(seq 100); do grep -qx ready "$OUT/serve.out" && break; sleep 0.1; done
ADMIN=$(awk '$1=="admin"{print $2}' "$OUT/serve.out")
"$BIN" ctl --admin "$ADMIN" traffic 100 >/dev/null
sleep 5
measure "$S" "serve alone, 100 req/s"
kill "$S"; sleep 1

"$BIN" serve --ports auto --no-traffic >"$OUT/idle.out" 2>/dev/null & S=$!; pids+=("$S")
for _ in $(seq 100); do grep -qx ready "$OUT/idle.out" && break; sleep 0.1; done
REG=$(awk '$1=="registry"{print $2}' "$OUT/idle.out"); ADMIN=$(awk '$1=="admin"{print $2}' "$OUT/idle.out")
for i in $(seq 1 "$N"); do
  printf '{"ID":"ext-%d","Name":"ext-svc-%d","Address":"127.0.0.1","Port":%d,"Check":{"TTL":"30s"}}' \
    "$i" $((i % 10)) $((20000 + i)) | curl -s -X PUT --data-binary @- "$REG/v1/agent/service/register"
done
tmux -L cpu new -d -s a -x 160 -y 48 "$BIN --attach $ADMIN"
sleep 35  # past the TTLs: every external instance critical, then nothing changes
A=$(dash_pid attach)
measure "$S" "serve, $N TTL instances, idle" &
measure "$A" "dashboard attached to it"
wait
