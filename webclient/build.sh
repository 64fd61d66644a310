#!/usr/bin/env bash
# Builds the browser client into webclient/dist/, which the Go binary embeds
# (webclient/embed.go) and serves at "/".
#
# npm packages are pinned by package-lock.json; esbuild bundles src/main.js
# (and MQTT.js) into one ES module, so the page needs no inline script and
# works under a strict Content-Security-Policy.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f package-lock.json ]; then
  npm install --no-audit --no-fund
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci installs exactly the lockfile; skipped when node_modules is already current.
  npm ci --no-audit --no-fund
fi

# Clear the previous build but keep the placeholder that lets `go build`
# embed dist/ before any web assets exist.
find dist -mindepth 1 ! -name .keep -exec rm -rf {} +

node_modules/.bin/esbuild src/main.js \
  --bundle --format=esm --target=es2020 --platform=browser \
  --minify --sourcemap --legal-comments=linked \
  --outfile=dist/app.js
node_modules/.bin/esbuild src/app.css --bundle --minify --outfile=dist/app.css
cp src/index.html dist/index.html
cp src/icon.svg dist/icon.svg
echo "built webclient/dist"
