#!/usr/bin/env bash
# Send the same usage event twice: StripeMeter counts it once.
#
#   TENANT_ID=$(uuidgen) bash examples/api-calls/send.sh
#
# TENANT_ID makes the event's idempotency key unique to this run (it is not the API key's tenant);
# STRIPEMETER_API_KEY is the key (printed by the first `stripemeter serve`), STRIPEMETER_URL the server.
set -euo pipefail
url="${STRIPEMETER_URL:-http://localhost:3000}"
key="${STRIPEMETER_API_KEY:?set STRIPEMETER_API_KEY to an API key with the events:write scope}"
run="${TENANT_ID:-$(date +%s%N)}"
ts="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
body=$(printf '{"events":[{"metric":"api_calls","customerRef":"cus_demo","quantity":1,"ts":"%s","idempotencyKey":"demo-%s-1"}]}' "$ts" "$run")

for attempt in 1 2; do
  printf 'attempt %s: ' "$attempt"
  curl -sS -X POST "$url/v1/events/ingest" \
    -H "Authorization: Bearer $key" -H "Content-Type: application/json" -d "$body"
  echo
done
