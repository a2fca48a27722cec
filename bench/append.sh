#!/usr/bin/env bash
# A file that keeps growing: N appends (default 1000) of the corpus' 1-second clip
# (tests/fixtures/tools/h264_aac_reference_1s.mp4, H.264 + AAC) to a copy of itself, with the
# real binary, one process per append, as a time-lapse recorder would call it.
#
# Prints: how many appends rewrote the file (target: at most log2(N) + 2), the most any
# in-place append wrote beyond its media and its new index (target: at most 4096 bytes),
# the bytes written in total against the final size, and the time.
#
#   bench/append.sh             # 1000 appends
#   bench/append.sh 100         # fewer
#   FUTURE_FRAMES=30000 bench/append.sh   # --future-frames on every append
# Exit status 0 on PASS, 1 on FAIL or error.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-1000}"
out="${BENCH_DIR:-$root/bench/out}/append"
mkdir -p "$out"
cargo build --release -q --manifest-path "$root/Cargo.toml"
bin="$root/target/release/livemux"
clip="$root/tests/fixtures/tools/h264_aac_reference_1s.mp4"
target="$out/growing.mp4"
cp "$clip" "$target"
rewrites=0
worst=0
total=0
start=$(date +%s.%N)
for i in $(seq "$n"); do
    line=$("$bin" append "$target" "$clip" --future-frames "${FUTURE_FRAMES:-0}" 2>&1 | tail -1)
    # "...: K chunks appended (M bytes of media) in place: W bytes written, index I bytes ..."
    media=$(sed -E 's/.*\(([0-9]+) bytes of media\).*/\1/' <<<"$line")
    written=$(sed -E 's/.*: ([0-9]+) bytes written.*/\1/' <<<"$line")
    index=$(sed -E 's/.*index ([0-9]+) bytes.*/\1/' <<<"$line")
    total=$((total + written))
    if [[ "$line" == *"by a rewrite"* ]]; then
        rewrites=$((rewrites + 1))
    else
        extra=$((written - media - index))
        ((extra > worst)) && worst=$extra
    fi
done
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
size=$(stat -c %s "$target")
bound=$(awk -v n="$n" 'BEGIN { printf "%d", log(n) / log(2) + 2 }')
frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$target")
echo "appends:            $n of a 1 s clip ($(stat -c %s "$clip") bytes), final file $size bytes, $frames video frames"
echo "rewrites:           $rewrites (bound $bound)"
echo "in place, at most:  $worst bytes written beyond media + new index (bound 4096)"
echo "written in total:   $total bytes ($(echo "scale=2; $total / $size" | bc)x the final size)"
echo "time:               ${elapsed}s ($(echo "scale=1; $elapsed * 1000 / $n" | bc) ms per append)"
if ((rewrites <= bound && worst <= 4096)); then
    echo PASS
else
    echo FAIL
    exit 1
fi
