#!/usr/bin/env bash
# Installs what JadeVectorDB needs on a fresh Debian machine (Node 20 and npm present):
# npm packages from the lock file, and Debian's nats-server, fashion-mnist, prometheus (for
# promtool, which checks and unit-tests the alert rules), chromium (the dashboard's browser
# test), openssl (the security tests' certificates), and g++, make and python3 (node-gyp builds
# usearch's binding with an asynchronous save: native/usearch) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages: the NATS server, and the fashion-mnist images the recall tests and the benchmark use.
missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The dashboard's browser test drives Debian's Chromium (playwright-core, never a downloaded browser).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The security tests make their certificates at run time with openssl.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# native/usearch is compiled at install time (scripts/build-native.sh).
for tool in g++ make python3; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# usearch's binding with an asynchronous save (native/usearch): npm ci builds it; this builds it
# when node_modules came from before it, and does nothing when it is up to date.
bash scripts/build-native.sh
