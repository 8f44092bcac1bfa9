#!/usr/bin/env bash
# Builds native/usearch (usearch's Node binding with an asynchronous save: see its index.cpp)
# unless the built addon is newer than its sources and was built from the installed usearch. Run by
# `npm ci` (postinstall) and scripts/setup.sh; needs g++, make and python3 (node-gyp), and Node's
# headers (npm's `nodedir`, /usr on Debian's Node; node-gyp downloads them otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
addon=native/usearch/build/Release/jade_usearch.node
stamp=native/usearch/build/usearch-version
usearch=$(node -p "require('./node_modules/usearch/package.json').version")
if [ -f "$addon" ] && [ "$addon" -nt native/usearch/index.cpp ] && [ "$addon" -nt native/usearch/binding.gyp ] \
  && [ "$(cat "$stamp" 2>/dev/null)" = "$usearch" ]; then
  exit 0
fi
echo "building native/usearch (usearch's binding with an asynchronous save; about 2 minutes on 2 cores)" >&2
# npm scripts run node-gyp from npm itself (npm_config_node_gyp); outside npm, from npm's install.
gyp="${npm_config_node_gyp:-$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js}"
nodedir="${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}"
args=(rebuild --directory native/usearch --jobs max)
if [ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ "$nodedir" != "null" ]; then args+=(--nodedir "$nodedir"); fi
node "$gyp" "${args[@]}" > native/usearch/build.log 2>&1 || { tail -40 native/usearch/build.log >&2; exit 1; }
echo "$usearch" > "$stamp"
