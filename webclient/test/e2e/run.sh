#!/usr/bin/env bash
# End-to-end tests of the web client: builds the assets and the server, then
# drives Debian's Chromium with playwright-core (never a downloaded browser)
# against real `mqim serve` processes that each test file starts and stops.
set -euo pipefail
cd "$(dirname "$0")/../.."   # webclient/
root="$(cd .. && pwd)"

. test/e2e/lib.sh
ensure_apt chromium:/usr/bin/chromium mosquitto-clients:mosquitto_pub \
  fonts-noto-cjk:/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \
  fonts-noto-color-emoji:/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
ensure_built

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/mqim" .)

export MQIM_BIN="$tmp/mqim"
files=(test/e2e/*.test.js)
if [ $# -gt 0 ]; then files=("$@"); fi
node --test --test-concurrency=1 "${files[@]}"
