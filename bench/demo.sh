#!/usr/bin/env bash
# Starts boxoffice with a demo event and prints the seat-map links of two buyers.
#
#   bench/demo.sh            # then open the printed links (two browser windows)
#
# The server runs in the foreground on a fresh data directory (DEMO_DATA_DIR, default a new
# temporary one) at DEMO_LISTEN (default 127.0.0.1:8080); Ctrl-C stops it. Needs curl.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BOXOFFICE_BIN:-target/release/boxoffice}
if [ ! -x "$BIN" ]; then
  cargo build --release --bin boxoffice
fi
LISTEN=${DEMO_LISTEN:-127.0.0.1:8080}
DATA=${DEMO_DATA_DIR:-$(mktemp -d)/data}
BASE="http://$LISTEN"

"$BIN" serve --listen "$LISTEN" --data-dir "$DATA" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 100); do
  if curl -fsS "$BASE/ready" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER" 2>/dev/null; then echo "the server did not start" >&2; exit 1; fi
  sleep 0.1
done
curl -fsS "$BASE/ready" >/dev/null

ADMIN="Authorization: Bearer $(cat "$DATA/admin_token")"
curl -fsS -X POST "$BASE/v1/events" -H "$ADMIN" -H 'content-type: application/json' -d '{
  "id": "demo", "name": "Demo night", "max_per_user": 6, "hold_ttl_seconds": 120,
  "sections": [
    {"id": "stalls", "name": "Stalls", "price_cents": 6500, "seats": {"rows": [
      {"label": "A", "count": 14}, {"label": "B", "count": 16}, {"label": "C", "count": 16},
      {"label": "D", "count": 18}, {"label": "E", "count": 18}, {"label": "F", "count": 18}]}},
    {"id": "balcony", "name": "Balcony", "price_cents": 4200, "seats": {"rows": [
      {"label": "K", "count": 20}, {"label": "L", "count": 20}]}},
    {"id": "standing", "name": "Standing", "price_cents": 3000, "capacity": 300}
  ]}' >/dev/null

ALICE=$("$BIN" token --user alice --data-dir "$DATA" --ttl 8h)
BOB=$("$BIN" token --user bob --data-dir "$DATA" --ttl 8h)
cat <<EOF

boxoffice demo: data in $DATA

  all events:  $BASE/
  as alice:    $BASE/events/demo#token=$ALICE
  as bob:      $BASE/events/demo#token=$BOB

Open the two buyers' links side by side; Ctrl-C stops the server.
EOF
wait "$SERVER"
