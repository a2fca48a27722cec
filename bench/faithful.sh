#!/usr/bin/env bash
# Faithfulness benchmark wrapper: builds livemux (release) and runs bench/faithful.py.
#   bench/faithful.sh FOLDER [faithful.py options...]     e.g. bench/faithful.sh ../shared/external --jobs 1
#   bench/faithful.sh --self-test
# Every rule is described at the top of bench/faithful.py (python3 bench/faithful.py --help).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$root" && cargo build --release --quiet)
exec python3 "$root/bench/faithful.py" "$@"
