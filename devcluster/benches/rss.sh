#!/usr/bin/env bash
# RSS with a full span store: `lgo-dash serve` under 2000 req/s of generated traffic until the
# 100 000-span store has been full for a while, then VmRSS. With DASHBOARD=1 the dashboard
# itself (TUI and embedded cluster) under tmux, cycling the Traces, Config and Logs tabs.
#
# Run from the repository root after `cargo build --release`:
#   bash devcluster/benches/rss.sh            # serve, 150 s
#   DASHBOARD=1 bash devcluster/benches/rss.sh
set -euo pipefail
BIN=${BIN:-$PWD/target/release/lgo-dash}
SECS=${SECS:-150}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rss() { grep VmRSS "/proc/$1/status" | awk '{printf "%.1f MB", $2/1024}'; }
spans() { curl -s "$1/metrics" | awk '/^trace_spans_stored /{print $2}'; }
if [ "${DASHBOARD:-}" = 1 ]; then
  tmux kill-session -t lgo-rss 2>/dev/null || true
  tmux new -d -s lgo-rss -x 160 -y 48 "$BIN --ports auto"
  sleep 3
  admin=$(tmux capture-pane -p -t lgo-rss | grep -o 'admin http://127.0.0.1:[0-9]*' | head -1 | cut -d' ' -f2)
  pid=$(pgrep -f "^$BIN --ports auto" | head -1)
  "$BIN" ctl --admin "$admin" traffic 2000 >/dev/null
  for key in 5 6 7; do sleep $((SECS / 4)); tmux send-keys -t lgo-rss "$key"; done
  sleep $((SECS / 4))
  echo "dashboard: spans stored $(spans "$admin"), RSS $(rss "$pid")"
  tmux send-keys -t lgo-rss q
else
  "$BIN" serve --ports auto >"$out/serve.out" 2>"$out/serve.err" &
  pid=$!
  for _ in $(seq 50); do grep -q '^ready' "$out/serve.out" && break; sleep 0.2; done
  admin=$(awk '$1=="admin"{print $2}' "$out/serve.out")
  echo "serve: at start RSS $(rss "$pid")"
  "$BIN" ctl --admin "$admin" traffic 2000 >/dev/null
  sleep "$SECS"
  echo "serve: spans stored $(spans "$admin"), RSS $(rss "$pid")"
  kill "$pid"; wait "$pid" || true
fi
