#!/usr/bin/env bash
# Checks the library's public face (issue 14): what an embedding program gets with
# `default-features = false`, and that the API is documented.
#   1. `cargo tree -e normal --no-default-features` lists none of the command line's crates;
#   2. the library builds, and its unit tests pass, without the default features;
#   3. the library builds warning-free with and without them (dead code, missing docs);
#   4. `cargo doc` is warning-free with and without them.
# Usage: scripts/check-api.sh   (exit 0: all good; the first failure stops it)
set -euo pipefail
cd "$(dirname "$0")/.."

cli_only=(clap clap_complete clap_mangen miette tracing-subscriber inotify)
deps=$(cargo tree -e normal --no-default-features --prefix none | awk '{print $1}' | sort -u)
for c in "${cli_only[@]}"; do
  if grep -qx "$c" <<<"$deps"; then
    echo "FAIL: $c is a dependency of the library without the cli feature:" >&2
    cargo tree -e normal --no-default-features -i "$c" >&2
    exit 1
  fi
done
echo "ok: no ${cli_only[*]} without the cli feature"

# Fails on any warning. (Not RUSTFLAGS=-D warnings: that would rebuild everything; cargo
# replays a cached crate's warnings, so grepping them works on a warm cache too.)
no_warnings() {
  local out
  out=$("$@" 2>&1) || { echo "$out" >&2; echo "FAIL: $*" >&2; exit 1; }
  if grep -qE '^warning' <<<"$out"; then
    echo "$out" >&2
    echo "FAIL: warnings from $*" >&2
    exit 1
  fi
}
# Extra arguments (e.g. --release) go to the builds and tests.
no_warnings cargo build --no-default-features --lib "$@"
no_warnings cargo build --no-default-features --features server --lib "$@"
no_warnings cargo build "$@"
echo "ok: warning-free builds (library alone, and with the command line)"

cargo test --no-default-features --lib "$@" -q
echo "ok: unit tests without the default features"

no_warnings cargo doc --no-deps --no-default-features
no_warnings cargo doc --no-deps
echo "ok: cargo doc warning-free"
