#!/usr/bin/env bash
# livemux serve under load: N paced concurrent uploaders against the tus ingest server,
# with @tus/server (npm, FileStore) on the same workload as the peer.
#
# What it measures (driver: bench/serve/bench.mjs, load generator: bench/serve/loadgen.mjs):
#   1. the disk's fsync'd write bandwidth in the data dir, in the same run (before and after
#      the loads; the best is the reference): K writer threads (FSYNC_WRITERS, each count in
#      turn), each appending 1 MiB and fdatasync-ing it, FSYNC_SECS seconds (bench/serve/fsyncbw.py)
#   2. paced steps: for each N in N_LIST, a fresh server (release binary, loopback, temp
#      data dir) and N uploaders, each with its own keep-alive connection: POST with
#      Upload-Defer-Length: 1, then one PATCH per second of BITRATE kbit/s of a real
#      recording (samples/chrome_mp4_avc1_opus.mp4, its fragments looped with their times
#      moved on) for D seconds, then a PATCH declaring Upload-Length. PATCH latency (p50/p99,
#      from the scheduled send), errors, bytes acknowledged, server CPU and RSS (/proc/PID:
#      VmRSS and VmHWM), the generator's own CPU and event-loop lag. Steps stop at the first
#      N that misses p99 <= P99_MS or has an error: the one before is "largest N held".
#   3. idle recordings: IDLE_N uploads created with one PATCH each, then IDLE_HOLD s idle:
#      (RSS - RSS before) / IDLE_N.
#   4. saturation: SAT_N uploaders at SAT_BITRATE (default: together twice the measured
#      fsync bandwidth) for SAT_SECS: durable ingest rate as a share of the fsync bandwidth.
#   5. the same 2-4 against @tus/server + FileStore (bench/serve/server.mjs), then the
#      ratios livemux/tus (throughput, capacity, RSS). FileStore does not fsync: the peer
#      runs without the durability livemux keeps.
# Targets (issue 15): >= 500 recordings at p99 <= 250 ms, ingest >= 80% of the fsync
# bandwidth, <= 1 MiB RSS per idle recording, >= 2x the peer's throughput, <= 0.5x its RSS.
#
# Run from anywhere (needs node >= 20.19 and npm; the first run installs bench/serve's
# pinned packages with `npm ci`):
#   bench/serve.sh                          # everything, ~15 min with the defaults
#   D=5 N_LIST="50 200" IDLE_N=200 SAT_SECS=5 bench/serve.sh     # a short smoke run
#   N_LIST="50 100 200 500 800 1000 1500 2000"   # the steps (default)
#   D=20          seconds of paced upload per step (default 20)
#   BITRATE=1000  kbit/s per uploader (default 1000; the sample itself is ~290)
#   P99_MS=250    latency goal a step must hold
#   IDLE_N=1000 IDLE_HOLD=3   SAT_N=100 SAT_BITRATE=... SAT_SECS=10
#   LOADGEN_WORKERS=1   worker threads of the load generator
#   PEER=0        livemux only;  ONLY=tus  the peer only
#   FSYNC_WRITERS="1 4 8" FSYNC_SECS=3
#   DATA_DIR=/some/dir  where servers keep their data (default bench/out/serve; the same
#                 disk as the fsync measurement; each run's data is deleted after it)
#   LIVEMUX_BIN=/path/livemux   use this binary instead of building one
#   LIVEMUX_SERVE_ARGS="--fragment-ms 2000"   extra flags for livemux serve
# Prints one table row per run and a summary; raw numbers in bench/out/serve-results.json.
# Exit status 0 when every target holds, 1 otherwise or on error.
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "$0")/.." && pwd)"
for arg in "$@"; do
    case "$arg" in
        -h|--help) sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (settings are environment variables; see --help)" >&2; exit 2 ;;
    esac
done

command -v node >/dev/null || { echo "bench/serve.sh: node is missing" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench/serve.sh: python3 is missing" >&2; exit 1; }
if [ ! -d "$root/bench/serve/node_modules/@tus/server" ]; then
    echo "== npm ci in bench/serve (@tus/server, @tus/file-store, pinned by package-lock.json)"
    (cd "$root/bench/serve" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -z "${LIVEMUX_BIN:-}" ]; then
    echo "== building livemux (cargo build --release)"
    (cd "$root" && cargo build --release --quiet)
fi
# Run a private copy, so that a rebuild of target/ during the run cannot swap the binary.
livemux=$(mktemp /tmp/livemux-bench-bin.XXXXXX)
trap 'rm -f "$livemux"' EXIT
cp "${LIVEMUX_BIN:-$root/target/release/livemux}" "$livemux"; chmod 755 "$livemux"
echo "== livemux built from $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')," \
     "binary sha256 $(sha256sum "$livemux" | cut -c1-12); node $(node --version);" \
     "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# Thousands of connections and open files: raise the descriptor limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 8192 ] ||
    echo "!! open-file limit $(ulimit -n): large N may fail for want of descriptors" >&2

data="${DATA_DIR:-$root/bench/out/serve}"
mkdir -p "$data"
export LIVEMUX="$livemux" DATA_DIR="$data" SOURCE="${SOURCE:-$root/samples/chrome_mp4_avc1_opus.mp4}"
export OUT_JSON="${OUT_JSON:-$root/bench/out/serve-results.json}" CLK_TCK="$(getconf CLK_TCK)"
node "$root/bench/serve/bench.mjs"
