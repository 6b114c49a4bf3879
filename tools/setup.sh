#!/usr/bin/env bash
# Sets this checkout up to run: the npm dependencies, a WebGPU adapter for Dawn, and Chromium for the browser
# tests. Idempotent.
# Where Dawn finds no adapter (a machine with no GPU driver), it installs Mesa's lavapipe Vulkan driver from
# Debian bookworm-backports (mesa-vulkan-drivers 25.x; the stock 22.x is too old for Dawn) plus libvulkan1.
# Debian's chromium package is installed where it is missing (the browser tests drive it through puppeteer-core and
# are skipped, saying why, without it).
# Run it as root (or with sudo available) on Debian 12; elsewhere it says what to install by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# Node 20.19 or newer (vitest 4 and the build need it)
command -v node >/dev/null || die "Node.js is not installed: install Node 20.19+ (https://nodejs.org or Debian's nodesource packages)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  die "Node $(node --version) is too old: Node 20.19 or newer is needed"

# npm dependencies, reinstalled only when the lockfile changed since the last install
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
else
  say "npm dependencies are up to date"
fi

if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"
else SUDO="none"
fi

# Chromium for the browser tests (web/browser.test.ts). Optional: without it those tests are skipped.
chromium_found() { command -v chromium >/dev/null || [ -x "${GLM4V_CHROMIUM:-/nonexistent}" ]; }
if chromium_found; then
  say "Chromium for the browser tests: $(chromium --version 2>/dev/null || echo "$GLM4V_CHROMIUM")"
elif [ "$SUDO" != none ] && command -v apt-get >/dev/null; then
  say "installing Debian's chromium for the browser tests"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium; } >/dev/null 2>&1 ||
    say "chromium could not be installed: the browser tests will be skipped"
else
  say "no Chromium and no root to install it: the browser tests will be skipped (apt-get install chromium, or set GLM4V_CHROMIUM)"
fi

probe() { node tools/probe-adapter.mjs 2>/dev/null; }

if adapter=$(probe); then
  say "WebGPU adapter: $adapter"
  exit 0
fi

say "Dawn found no WebGPU adapter; installing Mesa's lavapipe Vulkan driver (software rendering on the CPU)"
[ "$SUDO" != none ] ||
  die "installing the Vulkan driver needs root. Run as root: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1 (after adding bookworm-backports to APT's sources), or install your GPU's Vulkan driver"
. /etc/os-release 2>/dev/null || true
[ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ] ||
  die "automatic install supports Debian 12 (bookworm) only; this is ${PRETTY_NAME:-unknown}. Install a Vulkan driver (Mesa 24+ lavapipe, or your GPU's) and libvulkan1 by hand"

list=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  say "adding bookworm-backports to APT sources ($list)"
  echo 'deb http://deb.debian.org/debian bookworm-backports main' | $SUDO tee "$list" >/dev/null
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
say "installed: $(dpkg-query -W -f='${Package} ${Version}\n' mesa-vulkan-drivers libvulkan1 | tr '\n' ' ')"

adapter=$(probe) || die "still no WebGPU adapter after installing lavapipe; run 'node tools/probe-adapter.mjs' to see Dawn's messages"
say "WebGPU adapter: $adapter"
