# Sourced by the gateway benchmarks: makes the reference backend at 127.0.0.1:9101 the only
# passing user-service instance of a running `lgo-dash serve` and waits until the gateway
# answers from it alone. Needs BIN (the lgo-dash binary) and the serve's printed endpoints in
# the file given as $1.
only_backend() {
  local endpoints=$1 reg adm gw ok body
  reg=$(awk '$1=="registry"{print $2}' "$endpoints")
  adm=$(awk '$1=="admin"{print $2}' "$endpoints")
  gw=$(awk '$1=="gateway"{print $2}' "$endpoints")
  curl -sf -X PUT "$reg/v1/agent/service/register" \
    -d '{"Name":"user-service","ID":"bench-ext","Address":"127.0.0.1","Port":9101}' >/dev/null
  for id in $("$BIN" ctl --admin "$adm" instances --json | grep -o '"id": *"user-service-[0-9]*"' | cut -d'"' -f4); do
    "$BIN" ctl --admin "$adm" kill "$id" >/dev/null
  done
  # The killed instances turn critical within a few health checks.
  for _ in $(seq 150); do
    ok=0
    for _ in 1 2 3 4 5 6; do
      body=$(curl -s "$gw/api/users/1" || true)
      [[ "$body" == *'"team":"core"'* ]] && ok=$((ok + 1))
    done
    [ "$ok" = 6 ] && return 0
    sleep 0.2
  done
  echo "the gateway does not reach the backend only: $body"
  return 1
}
