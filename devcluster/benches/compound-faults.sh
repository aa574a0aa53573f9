#!/usr/bin/env bash
# Two faults at once through the gateway under wrk: user-service-2 killed and restarted every 5 s
# (down 2.5 s each time) while user-service-3 fails 30 % of its calls. Prints wrk's totals, how
# many responses were not 2xx, the gateway's breakers, and RSS after warm-up and at the end.
# The CI test `devcluster/tests/compound_faults.rs` runs the same for a few seconds.
#
# Run from the repository root after `cargo build --release`:
#   bash devcluster/benches/compound-faults.sh [SECONDS] [CONNECTIONS]   (defaults 60 16)
# Environment: BIN (default target/release/lgo-dash). Needs wrk; everything on 127.0.0.1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/lgo-dash}
SECS=${1:-60}
CONNS=${2:-16}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release)"; exit 1; }
T=$(mktemp -d)
trap 'kill "$SP" 2>/dev/null || true; kill "$KP" 2>/dev/null || true; rm -rf "$T"' EXIT
KP=""
"$BIN" serve --ports auto --no-traffic >"$T/serve.out" 2>"$T/serve.err" & SP=$!
for _ in $(seq 100); do grep -qx ready "$T/serve.out" && break; sleep 0.1; done
grep -qx ready "$T/serve.out" || { echo "serve did not start: $(tail -n 3 "$T/serve.err")"; exit 1; }
ADM=$(awk '$1=="admin"{print $2}' "$T/serve.out")
GW=$(awk '$1=="gateway"{print $2}' "$T/serve.out")
ctl() { "$BIN" ctl --admin "$ADM" "$@"; }
rss() { awk '/VmRSS/{print $2}' "/proc/$SP/status"; }
ctl fault user-service-3 --error-rate 0.3 >/dev/null
wrk -t1 -c"$CONNS" -d5s "$GW/api/users/1" >/dev/null
rss0=$(rss)
( end=$((SECONDS + SECS))
  while [ $SECONDS -lt $end ]; do
    ctl kill user-service-2 >/dev/null; sleep 2.5; ctl restart user-service-2 >/dev/null; sleep 2.5
  done ) & KP=$!
wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$GW/api/users/1" >"$T/wrk.txt"
wait "$KP" || true
KP=""
rss1=$(rss)
total=$(awk '/requests in/{print $1}' "$T/wrk.txt")
non2xx=$(awk '/Non-2xx/{print $NF}' "$T/wrk.txt")
errors=$(awk '/Socket errors/{print}' "$T/wrk.txt")
grep -E 'Requests/sec|99%' "$T/wrk.txt"
[ -n "$errors" ] && echo "$errors"
ctl breakers
echo "compound faults: ${non2xx:-0} of ${total:-0} responses non-2xx; RSS ${rss0} kB after warm-up, ${rss1} kB at the end"
