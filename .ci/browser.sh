#!/usr/bin/env bash
# Ensure Debian's headless browser for the live-reload tests: /usr/bin/chromium and
# /usr/bin/chromedriver (tests/browser.py drives one with the other, never a
# downloaded driver). Installs the packages only where either is missing. Idempotent.
set -euo pipefail
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  echo "ci: chromium or chromedriver is missing; installing them from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi
[[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || {
  echo "ci: chromium and chromedriver are still missing after the install" >&2
  exit 1
}
echo "ci: $(/usr/bin/chromedriver --version | head -n 1)"
