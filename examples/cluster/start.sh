#!/usr/bin/env bash
# Three storywire nodes and a Redis on this machine behind HAProxy (on loopback unless LB_HOST says otherwise). Ctrl-C stops everything.
#   examples/cluster/start.sh            # public port 8080, nodes 9101-9103, Redis 6390
#   LB_HOST=0.0.0.0 examples/cluster/start.sh   # HAProxy reachable from other machines too
# Then open the printed demo URLs in two browser tabs: each tab says which node it landed on.
set -euo pipefail
cd "$(dirname "$0")/../.."

export LB_HOST=${LB_HOST:-127.0.0.1} LB_PORT=${LB_PORT:-8080} NODE1_PORT=${NODE1_PORT:-9101} NODE2_PORT=${NODE2_PORT:-9102} NODE3_PORT=${NODE3_PORT:-9103}
REDIS_PORT=${REDIS_PORT:-6390}
export DEMO_HTML="$PWD/examples/cluster/demo.html"

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v haproxy >/dev/null || need+=(haproxy)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
npm run build >/dev/null

export JWT_SECRET=${JWT_SECRET:-$(node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))')}
export API_KEY=${API_KEY:-$(node -e 'console.log(require("crypto").randomBytes(18).toString("base64url"))')}
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT" HOST=127.0.0.1 LOG_LEVEL=${LOG_LEVEL:-warn}
# A demo: dev mode's relaxed defaults (any user may notify any user, presence:<id> open to all) for its forms.
export STORYWIRE_DEV=1
# HAProxy reaches the nodes from 127.0.0.1: its X-Forwarded-For is believed from there, and only from there.
export TRUSTED_PROXIES=127.0.0.1
logs=$(mktemp -d)
pids=()
stop() {
  trap - INT TERM EXIT
  # Nodes first (they drain and unregister), then HAProxy and Redis; each by its own PID.
  for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait "${pids[@]:1}" 2>/dev/null || true
  kill -TERM "${pids[0]}" 2>/dev/null || true
  echo "stopped; logs were in $logs"
}
trap stop INT TERM EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$logs/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
for i in 1 2 3; do
  port_var="NODE${i}_PORT"
  NODE_ID="node$i" PORT="${!port_var}" DRAIN_MS=1000 node dist/main.js >"$logs/node$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  port_var="NODE${i}_PORT"
  until curl -sf "http://127.0.0.1:${!port_var}/readyz" >/dev/null; do sleep 0.1; done
done
haproxy -f examples/cluster/haproxy.cfg -db >"$logs/haproxy.log" 2>&1 &
pids+=($!)
until curl -sf "http://127.0.0.1:$LB_PORT/readyz" >/dev/null; do sleep 0.1; done

alice=$(node examples/cluster/token.mjs alice stories:publish)
bob=$(node examples/cluster/token.mjs bob)
cat <<TXT

  storywire cluster: Redis :$REDIS_PORT, nodes :$NODE1_PORT :$NODE2_PORT :$NODE3_PORT, HAProxy :$LB_PORT (logs: $logs)

  demo (open both; reload a tab to land on another node):
    http://localhost:$LB_PORT/?token=$alice
    http://localhost:$LB_PORT/?token=$bob
  API through the load balancer (any node):
    curl -H "Authorization: Bearer $API_KEY" -H 'content-type: application/json' \\
         -d '{"userId":"bob","notification":{"title":"Hello","message":"from the API"}}' http://localhost:$LB_PORT/v1/notifications
  kill -9 one node and watch its users go offline within NODE_LEASE_MS (10 s) on the others.

TXT
wait "${pids[0]}"
