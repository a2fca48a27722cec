#!/bin/sh
# Runs every fuzz target in turn for SECONDS each (default 600) and prints, per target, the
# executions and executions per second from libFuzzer's final stats. Exits 1 if any target
# crashed (a panic), timed out (an input over 10 s) or ran out of memory (over 2 GiB RSS);
# the input is kept in fuzz/artifacts/TARGET/ and the log in fuzz/artifacts/TARGET.log.
# Inputs are at most 64 KiB (-max_len): the seeds are smaller, and the moov-less scanner
# reads every byte position of damaged media, so bigger inputs only fuzz slower.
#
#   bench/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="mp4_demux mkv_reader" bench/fuzz.sh 60     # some targets only
#   FUZZ_SANITIZER=address bench/fuzz.sh                    # with AddressSanitizer
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); runs on the stable toolchain through
# RUSTC_BOOTSTRAP=1. One fuzzer at a time: each uses one core. See fuzz/README.md.
set -u
cd "$(dirname "$0")/.."
EACH=${1:-600}
SAN=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || { echo "error: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2; exit 2; }
[ -d fuzz/corpus ] || sh fuzz/seed.sh >/dev/null
mkdir -p fuzz/artifacts
cargo fuzz build -s "$SAN" -a >fuzz/artifacts/build.log 2>&1 || { echo "error: building the fuzz targets failed" >&2; exit 1; }
TARGETS=${FUZZ_TARGETS:-$(cargo fuzz list)}

stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n1; }
failed=0
printf '%-14s %12s %9s %8s  %s\n' target execs exec/s rss_mb result
for t in $TARGETS; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=fuzz/artifacts/$t.log
    cargo fuzz run -s "$SAN" -a "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(stat number_of_executed_units "$log")
    speed=$(stat average_exec_per_sec "$log")
    rss=$(stat peak_rss_mb "$log")
    if [ "$rc" = 0 ]; then
        result=ok
    else
        failed=1
        if grep -q "ERROR: libFuzzer: timeout" "$log"; then
            result=TIMEOUT
        elif grep -q "ERROR: libFuzzer: out-of-memory" "$log"; then
            result=OOM
        else
            result=CRASH
        fi
        input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
        result="$result ${input:-(see $log)}"
    fi
    printf '%-14s %12s %9s %8s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "${rss:-?}" "$result"
done
exit $failed
