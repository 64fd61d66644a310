#!/usr/bin/env bash
# End-to-end tests of the web client: builds the assets and the server, then
# drives Debian's Chromium with playwright-core (never a downloaded browser)
# against real `mqim serve` processes that each test file starts and stops.
set -euo pipefail
cd "$(dirname "$0")/../.."   # webclient/
root="$(cd .. && pwd)"

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# Rebuild the assets when they are missing or older than their sources.
if [ ! -d node_modules ] || [ ! -f dist/index.html ] ||
   [ -n "$(find src package-lock.json build.sh -newer dist/index.html -print -quit)" ]; then
  bash build.sh
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/mqim" .)

export MQIM_BIN="$tmp/mqim"
files=(test/e2e/*.test.js)
if [ $# -gt 0 ]; then files=("$@"); fi
node --test --test-concurrency=1 "${files[@]}"
