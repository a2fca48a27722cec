#!/usr/bin/env bash
# Regenerates web/vendor/tus.min.js (tus-js-client's browser bundle, which defines the global
# `tus`) and its licence from the npm package pinned in tests/browser/package-lock.json.
# Usage: web/update-vendor.sh            (the pinned version: npm ci)
#        web/update-vendor.sh 4.3.2      (another version: npm install, which updates the pin)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pkg="$root/tests/browser"
if [ $# -gt 0 ]; then
  npm install --prefix "$pkg" --save-exact --no-audit --no-fund "tus-js-client@$1"
else
  npm ci --prefix "$pkg" --no-audit --no-fund
fi
src="$pkg/node_modules/tus-js-client"
version="$(node -p "require('$src/package.json').version")"
mkdir -p "$root/web/vendor"
# Without its source-map comment: the map is not served (livemux serve embeds only this file).
grep -v '^//# sourceMappingURL=' "$src/dist/tus.min.js" > "$root/web/vendor/tus.min.js"
cp "$src/LICENSE" "$root/web/vendor/LICENSE"
echo "tus-js-client $version (npm, dist/tus.min.js), MIT: see LICENSE" > "$root/web/vendor/VERSION"
echo "web/vendor: tus-js-client $version"
