# Shared by run.sh and p2p-run.sh (sourced, from webclient/ as the working
# directory).

# ensure_apt PKG:PATH...: installs each Debian package whose command or file
# is missing (a fresh machine has neither chromium nor mosquitto-clients).
ensure_apt() {
  local need=() spec pkg probe
  for spec in "$@"; do
    pkg="${spec%%:*}" probe="${spec#*:}"
    if [[ "$probe" == /* ]]; then [ -e "$probe" ] || need+=("$pkg")
    else command -v "$probe" >/dev/null || need+=("$pkg"); fi
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
}

# ensure_built: rebuilds the web assets when missing or older than their sources.
ensure_built() {
  if [ ! -d node_modules ] || [ ! -f dist/index.html ] ||
     [ -n "$(find src package-lock.json build.sh -newer dist/index.html -print -quit)" ]; then
    bash build.sh
  fi
}
