#!/usr/bin/env bash
# The README walked as a new user would: its commands, in its order, on a
# clone where the tests have built the host. Every line not marked
# "walk-only" is a line of README.md, verbatim (host/tests/readme.rs checks
# that, then runs this script). Needs ports 8080 and 8081 free.
set -euo pipefail # walk-only
shopt -s expand_aliases # walk-only
cd "$(dirname "$0")/.." # walk-only
walk=$(mktemp -d) # walk-only
export IVR_DATA_DIR="$walk/ivr-data" # walk-only
[ ! -e routes.json ] || { echo "routes.json is in the way" >&2; exit 1; } # walk-only
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$walk" routes.json' EXIT # walk-only
up() { for _ in $(seq $((${1:-20} * 10))); do curl -sf http://127.0.0.1:8081/healthz >/dev/null && return; sleep 0.1; done; echo "no host on 8081" >&2; exit 1; } # walk-only
same() { diff <(tr -d '\n' < "$1") <(tr -d '\n' < "$2") >&2 || { echo "the reply differs from the README's" >&2; exit 1; }; } # walk-only
echo "== Quick start" # walk-only
( # walk-only: the README runs it in the foreground
rustup target add wasm32-wasip2 && cargo build --release --target wasm32-wasip2 -p bank-menu && cargo run -p ivr-host -- serve --app bank-menu=target/wasm32-wasip2/release/bank_menu.wasm --app-config bank-menu.agent_number=+6560002222 --app-config bank-menu.caller_id=+6561110000
) & # walk-only
up 900 # walk-only: the first start builds the host
echo "== Send it a call" # walk-only
{ # walk-only
curl -s http://127.0.0.1:8080/webhooks/vca -H 'content-type: application/json' -d '{
  "namespace": "VOICE", "eventType": "CALL_ACTION", "description": "Action request of a call",
  "payload": {
    "eventId": "eb0fc709-9693-11ea-454d-1705dde98182",
    "callId": "a1d6a5e3-efec-11e9-b999-7d370b5f90d1",
    "sessionId": "a1d6a5e2-efec-11e9-b999-efc71013a78f",
    "subAccountId": "your_subaccount_id",
    "callStatus": "CALL_RECEIVED", "callDirection": "INBOUND", "callType": "PSTN",
    "source": "+65123456789", "destination": "+65987654321",
    "callDuration": 0, "sipCode": 200, "timestamp": "2019-10-16T08:12:01Z"
  }
}'
} > "$walk/reply1.json" # walk-only
cat > "$walk/expected1.json" <<'JSON' # walk-only
{"clientActionId":"main-1","callflow":[{"action":"sayAndCapture","params":{"promptMessage":"Welcome to Example Bank. For your account balance, press 1. To speak to an agent, press 2. To hear these options again, press 3. To end the call, press 0.","voiceProfile":"en-US-ZiraRUS","minDigits":1,"maxDigits":1,"digitTimeout":5000,"overallTimeout":10000,"completeOnHash":false,"noOfTries":1}}]}
JSON
same "$walk/reply1.json" "$walk/expected1.json" # walk-only
{ # walk-only
curl -s http://127.0.0.1:8080/webhooks/vca -d '{"eventType":"CALL_ACTION","payload":{
  "eventId":"e2","sessionId":"a1d6a5e2-efec-11e9-b999-efc71013a78f","callStatus":"ACTION_COMPLETED",
  "callDirection":"INBOUND","source":"+65123456789","destination":"+65987654321",
  "clientActionId":"main-1","eventData":{"dtmf":"2"}}}'
} > "$walk/reply2.json" # walk-only
cat > "$walk/expected2.json" <<'JSON' # walk-only
{"clientActionId":"transfer","callflow":[{"action":"say","params":{"text":"Please hold while we connect you to an agent.","voiceProfile":"en-US-ZiraRUS"}},{"action":"makeCall","params":{"source":"+6561110000","destination":"+6560002222"}}]}
JSON
same "$walk/reply2.json" "$walk/expected2.json" # walk-only
echo "== Deploy, route, roll back" # walk-only
pkill -TERM -f 'ivr-host serve --app bank-menu=' # walk-only: Ctrl-C
wait %1 || true # walk-only
while curl -sf http://127.0.0.1:8081/healthz >/dev/null; do sleep 0.1; done # walk-only
alias ivr-host="$PWD/target/debug/ivr-host"
export IVR_ADMIN_TOKEN=change-me
ivr-host serve &
up # walk-only
ivr-host apps
# APP                       ACTIVE  VERSIONS  SHA256        deployed
# bank-menu                      1         1  6ac771959a16  2026-12-03T…
cargo build --release --target wasm32-wasip2 -p hello
ivr-host deploy bank-menu target/wasm32-wasip2/release/hello.wasm
# deployed bank-menu version 2 (…); live for new calls
ivr-host apps show bank-menu         # every version, when deployed and activated, the config
ivr-host rollback bank-menu          # back to version 1
ivr-host rollback bank-menu 2        # or to a named version
ivr-host rollback bank-menu 1
ivr-host config bank-menu agent_number=+6560002222 caller_id=+6561110000
curl -X PUT --data-binary @target/wasm32-wasip2/release/bank_menu.wasm \
  -H "Authorization: Bearer $IVR_ADMIN_TOKEN" http://127.0.0.1:8081/apps/bank-menu
# {"name":"bank-menu","version":1,"sha256":"…","size":…,"deployed_at":"…","activated_at":"…","unchanged":true}
ivr-host deploy hello target/wasm32-wasip2/release/hello.wasm
cat > routes.json <<'JSON'
{
  "default_app": "bank-menu",
  "rules": [
    { "number": "+6568332048", "app": "bank-menu" },
    { "sub_account": "acme_support", "app": "hello" },
    { "number": "+6568332049", "sub_account": "acme_support", "app": "hello" }
  ]
}
JSON
ivr-host routes set routes.json     # JSON, or TOML when the file ends in .toml
ivr-host routes                     # show
ivr-host apps                       # every app, its active version
ivr-host apps delete hello || echo "refused: the routes name hello"
echo '{"default_app": "bank-menu", "rules": []}' > routes.json
ivr-host routes set routes.json
ivr-host apps delete hello
ivr-host apps | grep -q bank-menu # walk-only
! ivr-host apps | grep -q hello # walk-only
echo "README walk: every command ran" # walk-only
