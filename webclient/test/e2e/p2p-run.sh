#!/usr/bin/env bash
# Browser WebRTC file-transfer tests (test/e2e/p2p/*.test.js), run inside a
# private network namespace: Chromium gathers no ICE candidates on loopback
# alone, so the namespace gets a veth pair (192.0.2.1/24 and 192.0.2.2/24,
# both ends inside, default route via one of them). The server, the
# browsers and the Go CLI all run in there, and no packet leaves the machine.
# Needs root (or CAP_SYS_ADMIN) for unshare; scripts/test runs it.
#
#   bash webclient/test/e2e/p2p-run.sh            # the tests
#   bash webclient/test/e2e/p2p-run.sh --bench    # the browser benchmark (bench.mjs)
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../.."   # webclient/
root="$(cd .. && pwd)"

if [ "${MQIM_IN_NETNS:-}" != 1 ]; then
  . test/e2e/lib.sh
  ensure_apt chromium:/usr/bin/chromium iproute2:ip util-linux:unshare
  ensure_built
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$root" && go build -o "$tmp/mqim" .)
  MQIM_BIN="$tmp/mqim" MQIM_IN_NETNS=1 unshare --net -- bash "$self" "$@"
  exit
fi

# Inside the namespace.
ip link set lo up
ip link add mqim0 type veth peer name mqim1
ip addr add 192.0.2.1/24 dev mqim0
ip addr add 192.0.2.2/24 dev mqim1
ip link set mqim0 up
ip link set mqim1 up
ip route add default via 192.0.2.1 dev mqim1
export MQIM_BIN
if [ "${1:-}" = --bench ]; then
  exec timeout --kill-after=10 600 node test/e2e/p2p/bench.mjs
fi
files=(test/e2e/p2p/*.test.js)
if [ $# -gt 0 ]; then files=("$@"); fi
# The tests bound themselves; timeout is the backstop so CI never hangs.
timeout --kill-after=10 170 node --test --test-concurrency=1 "${files[@]}"
